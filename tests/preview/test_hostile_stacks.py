"""`aifactory preview` on stack folders a pull request has tampered with.

Each case copies an example stack into ``tmp_path``, changes one of the files a pull request can
change (Pulumi.yaml, Pulumi.<stack>.yaml, factory.yaml, a symlink), and runs the real command
line. Every one must exit 1 with one clear error that names the file (and the line or the key
where there is one), print no traceback, echo no secret or file content, and finish quickly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"
PLANTED = "PLANTED-s3cr3t-77c1"  # never in any output
BOMB = "".join(f"  b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]\n" if i else "  b0: &b0 [x, x, x, x, x, x, x, x, x]\n"
               for i in range(10))


def copy_stack(tmp_path: Path, name: str = "aws-p5") -> Path:
    dst = tmp_path / name
    shutil.copytree(STACKS / name, dst, ignore=shutil.ignore_patterns(".aifactory", "__pycache__"))
    return dst


def set_config(stack: Path, **config) -> Path:
    """Replace the stack's config with ``config`` (keys written with ':' for '__')."""
    path = stack / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump({"config": {k.replace("__", ":"): v for k, v in config.items()}}))
    return path


def aifactory(*args, capsys, monkeypatch) -> tuple[int, str, str]:
    """The real command line, in this process: (exit code, stdout, stderr)."""
    from aifactory.cli import main

    monkeypatch.setattr(sys, "argv", ["aifactory", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_refused(result, *fragments: str, secret: str = PLANTED) -> str:
    """Exit 1, no traceback, one error line holding every fragment, nothing secret echoed."""
    code, out, err = result
    assert code == 1, (code, out, err)
    assert "Traceback" not in err + out
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert secret not in out + err
    return lines[0]


# -- 1. alias bombs: the bounded loader reads every stack file -----------------------------------

@pytest.mark.parametrize("target", ["Pulumi.dev.yaml", "Pulumi.yaml"])
def test_alias_bomb_in_a_stack_file_is_refused_fast(tmp_path, target):
    stack = copy_stack(tmp_path)
    if target == "Pulumi.yaml":
        (stack / target).write_text("name: aws-p5\nruntime: python\nbombs:\n" + BOMB)
    else:
        (stack / target).write_text("config:\n" + BOMB + "  aifactory:bmcRetry: *b9\n")
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "aifactory", "preview", str(stack)], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert time.monotonic() - started < 20
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"{stack / target}:") and "alias" in line


# -- 2. malformed project and stack files --------------------------------------------------------

PROJECTS = {
    "a list": ("- name: x\n", ":1: <root>: must be a mapping"),
    "name a list": ("name: [a, b]\nruntime: python\n", ":1: name: must be a project name"),
    "name missing": ("runtime: python\n", ":1: name: required field 'name' is missing"),
    "name with a slash": ("name: ../x\nruntime: python\n", ":1: name: must be a project name"),
    "another runtime": ("name: x\nruntime: nodejs\n", ":2: runtime: must be python"),
    "a main elsewhere": ("name: x\nruntime: python\nmain: ../other/\n", ":3: main: not supported"),
    "a python tag": ("name: !!python/object/apply:os.system [echo hi]\nruntime: python\n", "not allowed"),
    "a duplicate key": ("name: x\nruntime: python\nname: y\n", ":3: name: duplicate key"),
    "empty": ("", ":1: <root>: the file is empty"),
    "not UTF-8": (b"name: \xff\xfe\n", ":1: <root>: not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(PROJECTS))
def test_malformed_project_file_is_one_located_error(tmp_path, capsys, monkeypatch, case):
    content, fragment = PROJECTS[case]
    stack = copy_stack(tmp_path)
    project = stack / "Pulumi.yaml"
    project.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch), str(project), fragment)


def test_project_file_that_is_a_folder_or_missing_or_a_link_out(tmp_path, capsys, monkeypatch):
    stack = copy_stack(tmp_path)
    project = stack / "Pulumi.yaml"
    project.unlink()
    project.mkdir()
    assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch), str(project), "is a folder")
    project.rmdir()
    assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch), "no Pulumi.yaml")
    secret = tmp_path / "secret.yaml"
    secret.write_text(f"name: {PLANTED}\nruntime: python\n")
    project.symlink_to(secret)
    assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch), str(project),
                   "symlink that leaves the stack folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_unreadable_project_file(tmp_path, capsys, monkeypatch):
    stack = copy_stack(tmp_path)
    (stack / "Pulumi.yaml").chmod(0)
    assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch), "cannot read file")


CONFIGS = {
    "a list": ("- x\n", ":1: <root>: must be a mapping"),
    "config a list": ("config: [a, b]\n", ":1: config: must be a mapping"),
    "config a string": ("config: hello\n", ":1: config: must be a mapping"),
    "a key with a line break": ('config:\n  "aws:region\\nFORGED": x\n', ":2: config['aws:region\\nFORGED']"),
    "a key with two namespaces": ("config:\n  a:b:c: x\n", "not a config key"),
    "a null value": ("config:\n  aws:region:\n", ":2: config['aws:region']: no value"),
    "a NaN": ("config:\n  aifactory:bmcRetry: {attempts: .nan}\n", "not a finite number"),
    "a huge value": ("config:\n  aws:region: " + "x" * 70_000 + "\n", "longer than 64 KiB"),
    "a tag": ("config:\n  aws:region: !!binary aGk=\n", "not allowed"),
    "a duplicate key": ("config:\n  aws:region: a\n  aws:region: b\n", ":3: config['aws:region']: duplicate key"),
    "a key twice with and without namespace": ("config:\n  aws-p5:x: a\n  x: b\n", "the same key as aws-p5:x"),
    "an encrypted value": ("config:\n  aifactory:bmcPassword:\n    secure: v1:abc\n", "encrypted secrets"),
    "an encrypted value inside": ("config:\n  aifactory:bmcRetry:\n    a: {secure: v1:abc}\n", "encrypted secrets"),
    "a merge key": ("config:\n  a: &a {x: 1}\n  b:\n    <<: *a\n", "merge keys"),
    "over 1 MiB": ("# " + "x" * (1024 * 1024) + "\n", "larger than 1 MiB"),
    "deep nesting": ("config:\n  aws:region: " + "[" * 200 + "]" * 200 + "\n", "nesting deeper"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_malformed_stack_config_is_one_located_error(tmp_path, capsys, monkeypatch, case):
    content, fragment = CONFIGS[case]
    stack = copy_stack(tmp_path)
    config = stack / "Pulumi.dev.yaml"
    config.write_text(content)
    line = assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch), str(config), fragment)
    assert "FORGED" not in line.split(str(config), 1)[0]


def test_stack_config_linked_out_of_the_folder_is_not_read(tmp_path, capsys, monkeypatch):
    stack = copy_stack(tmp_path)
    outside = tmp_path / "outside.yaml"
    outside.write_text(f"config:\n  aws:region: [{PLANTED}]\n")
    (stack / "Pulumi.dev.yaml").unlink()
    (stack / "Pulumi.dev.yaml").symlink_to(outside)
    assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch),
                   "Pulumi.dev.yaml: a symlink that leaves the stack folder")


def test_empty_or_comment_only_stack_config_is_no_config(tmp_path, capsys, monkeypatch):
    stack = copy_stack(tmp_path, "lab")
    for text in ("", "# nothing set yet\n", "config:\n", "config: {}\n"):
        (stack / "Pulumi.dev.yaml").write_text(text)
        code, out, err = aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch)
        assert code == 0, (text, err)


# -- 3. the factory path is confined to the stack folder -----------------------------------------

@pytest.mark.parametrize("value", ["/etc/passwd", "../../../../etc/passwd", "../aws-p5/factory.yaml", "/dev/zero",
                                   "/proc/self/environ", "", ".", "sub/../factory.yaml", "factory.yaml\n", 42,
                                   ["factory.yaml"], "nope.yaml", "sub"])
def test_factory_path_outside_the_folder_or_odd_is_refused(tmp_path, capsys, monkeypatch, value):
    stack = copy_stack(tmp_path)
    (stack / "sub").mkdir()
    config = set_config(stack, aifactory__factory=value)
    line = assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch),
                          f"{config}:2: config aifactory:factory:")
    assert "root:" not in line and "/etc/passwd" not in line


def test_factory_symlinks_out_of_the_folder_are_refused_and_content_never_echoed(tmp_path, capsys, monkeypatch):
    outside = tmp_path / "notes.txt"
    outside.write_text(f"{PLANTED}: the first line of a file that is not a factory\n")
    stack = copy_stack(tmp_path)
    (stack / "link.yaml").symlink_to(outside)
    set_config(stack, aifactory__factory="link.yaml")
    assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch),
                   "config aifactory:factory:", "resolves outside the stack folder")
    # The default factory.yaml may be a committed symlink too.
    (stack / "Pulumi.dev.yaml").write_text("config: {}\n")
    (stack / "factory.yaml").unlink()
    (stack / "factory.yaml").symlink_to(outside)
    assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch),
                   "factory.yaml: resolves outside the stack folder")


def test_factory_path_inside_the_folder_is_used(tmp_path, capsys, monkeypatch):
    stack = copy_stack(tmp_path)
    (stack / "specs").mkdir()
    (stack / "factory.yaml").rename(stack / "specs" / "p5.yaml")
    (stack / "alias.yaml").symlink_to("specs/p5.yaml")  # a link that stays inside is fine
    for value in ("specs/p5.yaml", "alias.yaml"):
        set_config(stack, aifactory__factory=value)
        code, out, err = aifactory("preview", stack, "-f", "json", capsys=capsys, monkeypatch=monkeypatch)
        assert code == 0, err
        assert '"aifactory:aws:GpuPool"' in out


# -- 4. --stack must name a stack that exists, and be a name ------------------------------------

def test_unknown_stack_is_an_error_naming_the_stacks(tmp_path, capsys, monkeypatch):
    stack = copy_stack(tmp_path)
    (stack / "Pulumi.prod.yaml").write_text("config: {}\n")
    assert_refused(aifactory("preview", stack, "--stack", "staging", capsys=capsys, monkeypatch=monkeypatch),
                   "--stack staging: no Pulumi.staging.yaml", str(stack), "(stacks: dev, prod)")
    code, _, err = aifactory("preview", stack, "--stack", "prod", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err


@pytest.mark.parametrize("name", ["../dev", "dev/x", "..", ".dev", "dev\nFORGED", "/etc/passwd", "a" * 101, "-dev",
                                  "dev yaml"])
def test_unsafe_stack_names_are_refused(tmp_path, capsys, monkeypatch, name):
    stack = copy_stack(tmp_path)
    line = assert_refused(aifactory("preview", stack, "--stack", name, capsys=capsys, monkeypatch=monkeypatch),
                          "--stack", "is not a stack name")
    assert "\n" not in line


def test_stack_files_with_unsafe_names_are_not_stacks(tmp_path, capsys, monkeypatch):
    stack = copy_stack(tmp_path)
    (stack / "Pulumi.a b.yaml").write_text("config: {}\n")
    (stack / "Pulumi..x.yaml").write_text("config: {}\n")
    code, _, err = aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err  # still exactly one stack: dev


# -- 6. reservation ids from the stack config are held to the spec's type ------------------------

@pytest.mark.parametrize("value, fragment", [
    ({"train": "cr-1; touch /tmp/x"}, "train: not a valid reservation id"),
    ({"train": "../../x"}, "train: not a valid reservation id"),
    ({"train": "-flag"}, "train: not a valid reservation id"),
    ({"train": "cr-0123\nFORGED"}, "train: not a valid reservation id"),
    ({"train": "{{ lookup('pipe', 'id') }}"}, "train: not a valid reservation id"),
    ({"train": "cr-" + "a" * 300}, "train: not a valid reservation id"),
    ({"train": 10 ** 30}, "train: the reservation id must be a string"),
    ({"train": {"nested": "x"}}, "train: the reservation id must be a string"),
    ({"train": False}, "train: the reservation id must be a string"),
    ({"Train\nFORGED": "cr-1"}, "is not a pool name"),
    ({"nope": "cr-1"}, "no pool named nope (pools: train)"),
    (["cr-1"], "must be a mapping of pool name to reservation id"),
    ("cr-1", "must be a mapping of pool name to reservation id"),
    (7, "must be a mapping of pool name to reservation id"),
])
def test_bad_reservations_are_refused_naming_the_key(tmp_path, capsys, monkeypatch, value, fragment):
    stack = copy_stack(tmp_path)
    config = set_config(stack, aifactory__reservations=value)
    line = assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch),
                          f"{config}:2: config aifactory:reservations:", fragment)
    assert "touch" not in line and "lookup" not in line and "FORGED" not in line  # never echoed


@pytest.mark.parametrize("value", [{"train": "cr-0123456789abcdef0"}, '{"train": "cr-0123456789abcdef0"}'])
def test_valid_reservation_reaches_the_launch_template(tmp_path, capsys, monkeypatch, value):
    stack = copy_stack(tmp_path)
    set_config(stack, aws__region="us-east-1", aifactory__reservations=value)
    code, out, err = aifactory("preview", stack, "-f", "json", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    assert "cr-0123456789abcdef0" in out


# -- 5 and 7. BMC settings: typed, bounded, never echoed -----------------------------------------

BMC_CASES = [
    ("bmcScheme", f"ftp://admin:{PLANTED}@10.0.0.1", "must be https or http"),
    ("bmcScheme", f"https://admin:{PLANTED}@", "must be https or http"),
    ("bootTarget", f"Pxe\n{PLANTED}", "must be Pxe or UefiHttp"),
    ("bootTarget", True, "must be Pxe or UefiHttp"),
    ("bmcUsername", f"admin:{PLANTED}", "must be a BMC user name"),
    ("bmcUsername", f"admin\n{PLANTED}", "must be a BMC user name"),
    ("bmcPassword", f"{PLANTED}\nsecond line", "must be at most 256 characters"),
    ("bmcPassword", PLANTED * 20, "must be at most 256 characters"),
    ("bmcPowerOffOnDelete", PLANTED, "must be true or false"),
    ("bmcVerifyTls", "/etc/shadow", "must be a relative path"),
    ("bmcVerifyTls", f"../{PLANTED}.pem", "must be a relative path"),
    ("bmcVerifyTls", f"{PLANTED}.pem", "no such file in the stack folder"),
    ("bmcRetry", {"attempts": PLANTED}, "RetryPolicy.attempts must be a whole number"),
    ("bmcRetry", {"attempts": 10 ** 12}, "RetryPolicy.attempts must be at most 50"),
    ("bmcRetry", {"attempts": True}, "RetryPolicy.attempts must be a whole number"),
    ("bmcRetry", {"attempts": 2.5}, "RetryPolicy.attempts must be a whole number"),
    ("bmcRetry", {"power_timeout_s": 1e300}, "RetryPolicy.power_timeout_s must be at most 3600"),
    ("bmcRetry", {"backoff_s": -1}, "RetryPolicy.backoff_s must be positive"),
    ("bmcRetry", {f"x{PLANTED}\nFORGED": 1}, "unknown field(s)"),
    ("bmcRetry", [1], "must be a mapping of"),
    ("bmcRetry", PLANTED, "must be a mapping of"),
    ("bmcRetry", 5, "must be a mapping of"),
]


@pytest.mark.parametrize("key, value, fragment", BMC_CASES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BMC_CASES)])
def test_bad_bmc_settings_are_refused_without_echoing_them(tmp_path, capsys, monkeypatch, key, value, fragment):
    stack = copy_stack(tmp_path, "onprem-dgx")
    config = set_config(stack, **{f"aifactory__{key}": value})
    line = assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch),
                          f"{config}:", f"config aifactory:{key}:", fragment)
    assert "FORGED" not in line and "/etc/shadow" not in line


def test_planted_bmc_credentials_never_reach_any_output(tmp_path, capsys, monkeypatch):
    stack = copy_stack(tmp_path, "onprem-dgx")
    set_config(stack, aifactory__bmcUsername=f"u{PLANTED}", aifactory__bmcPassword=f"p{PLANTED}")
    for fmt in ("json", "table"):
        code, out, err = aifactory("preview", stack, "-f", fmt, capsys=capsys, monkeypatch=monkeypatch)
        assert code == 0, err
        assert PLANTED not in out + err
        assert fmt == "table" or '"bmc_password": "[secret]"' in out  # the value reached the nodes, masked


def test_ca_bundle_inside_the_stack_folder_is_used(tmp_path, capsys, monkeypatch):
    stack = copy_stack(tmp_path, "onprem-dgx")
    (stack / "bmc-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    set_config(stack, aifactory__bmcVerifyTls="bmc-ca.pem")
    code, out, err = aifactory("preview", stack, "-f", "json", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    assert str((stack / "bmc-ca.pem").resolve()) in out


# -- 7. the other plain settings the components read ---------------------------------------------

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDO93r15Ofq996yo2oa/atcq6BFEGR5IFQMJlETGu/KN"


@pytest.mark.parametrize("key, value, fragment", [
    ("aifactory:sshPublicKey", SSH_KEY + "\nFORGED", "must be an OpenSSH public key"),
    ("aifactory:sshPublicKey", SSH_KEY + " {{ lookup('pipe', 'id') }}", "must be an OpenSSH public key"),
    ("aifactory:ociCompartmentId", "../../etc/passwd", "must be an OCI compartment OCID"),
    ("gcp:project", "proj/../../x", "must be a Google Cloud project id"),
])
def test_other_settings_are_typed(tmp_path, capsys, monkeypatch, key, value, fragment):
    stack = copy_stack(tmp_path, "multicloud")
    config = stack / "Pulumi.dev.yaml"
    data = yaml.safe_load(config.read_text())
    data["config"][key] = value
    config.write_text(yaml.safe_dump(data))
    line = assert_refused(aifactory("preview", stack, capsys=capsys, monkeypatch=monkeypatch),
                          f"{config}:", f"config {key}: {fragment}")
    assert "FORGED" not in line and "lookup" not in line and "passwd" not in line
