"""``aifactory mirror``: the lock's NVIDIA packages as an offline bundle, fetched from stand-ins of
NVIDIA's repositories (tests/install/repository.py: built from the catalog, signed, served on
loopback) for Ubuntu 24.04 (apt) and RHEL 9 (dnf); the bundle read back by apt and createrepo_c's
own metadata."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from aifactory import mirror
from aifactory import plan as planning
from aifactory import spec
from aifactory.catalog import load as load_catalog
from aifactory.errors import AifactoryError
from aifactory.plan import software
from tests.conftest import require_tool
from tests.install import repository

FACTORY = Path(__file__).resolve().parent / "install" / "factory.yaml"
OSES = ("ubuntu-24.04", "rhel-9")


# --- fast: versions, options, the closure ------------------------------------------------------

@pytest.mark.parametrize("a, b, sign", [
    ("1.0", "1.0", 0), ("1.0~rc1", "1.0", -1), ("1:1.0", "2.0", 1), ("580.95.05-0ubuntu1", "580.95.05-1", -1),
    ("2.28.9-1+cuda13.0", "2.28.9-1+cuda12.9", 1), ("1.0-1", "1.0-1.1", -1), ("10", "9", 1), ("1.0a", "1.0", 1),
])
def test_debian_versions_compare_as_dpkg_does(a, b, sign):
    got = mirror.deb_compare(a, b)
    assert (got > 0) - (got < 0) == sign


@pytest.mark.parametrize("a, b, sign", [
    ((0, "1.0", "1"), (0, "1.0", "1"), 0), ((0, "1.0~rc1", "1"), (0, "1.0", "1"), -1),
    ((3, "580.95.05", "1.el9"), (0, "999", "1"), 1), ((0, "1.0^git1", "1"), (0, "1.0", "1"), 1),
    ((0, "1.10", "1"), (0, "1.9", "1"), 1), ((0, "1.0", "1.el9"), (0, "1.0", "1.el9_1"), -1),
    ((0, "1.0a", "1"), (0, "1.0", "1"), 1), ((0, "1.0", "1"), (0, "1.0.1", "1"), -1),
])
def test_rpm_versions_compare_as_rpm_does(a, b, sign):
    got = mirror.rpm_compare(a, b)
    assert (got > 0) - (got < 0) == sign


@pytest.mark.parametrize("values, message", [
    (["ubuntu-24.04"], "is not OS=URL"),
    (["ubuntu-24.04="], "is not OS=URL"),
    (["windows-11=http://x"], "is not a node OS"),
    (["ubuntu-24.04=ftp://mirror/cuda"], "not an http(s) URL"),
    (["ubuntu-24.04=http://user:pw@mirror/cuda"], "without credentials"),
    (["ubuntu-24.04=http://mirror/cuda?x=1"], "query"),
    (["ubuntu-24.04=http://mirror/cu da"], "not an http(s) URL"),
    (["ubuntu-24.04=http://mirror/a\nb"], "not an http(s) URL"),
    (["rhel-9=http://a", "rhel-9=http://b"], "given twice"),
])
def test_upstream_values_are_refused_in_one_line(values, message):
    with pytest.raises(AifactoryError) as info:
        mirror.parse_upstream(values)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_upstream_and_key_values_accepted(tmp_path):
    assert mirror.parse_upstream(["rhel-9=https://proxy.example/cuda/"]) == {"rhel-9": "https://proxy.example/cuda"}
    key = tmp_path / "key.asc"
    key.write_text("not a key\n")
    with pytest.raises(AifactoryError, match="not an armoured OpenPGP public key"):
        mirror.parse_keys([f"rhel-9={key}"])
    with pytest.raises(AifactoryError, match="cannot read file"):
        mirror.parse_keys([f"rhel-9={tmp_path / 'absent.asc'}"])


def test_the_closure_takes_the_newest_satisfying_dependency_and_lists_what_the_os_provides():
    index = """\
Package: tool
Version: 2.0-1
Architecture: amd64
Depends: libtool (= 2.0-1), dkms | other, libc6 (>= 2.35)
Filename: ./tool_2.0-1_amd64.deb
Size: 10
SHA256: aa

Package: tool
Version: 1.0-1
Architecture: amd64
Filename: ./tool_1.0-1_amd64.deb
Size: 10
SHA256: bb

Package: libtool
Version: 2.0-1
Architecture: amd64
Filename: ./libtool_2.0-1_amd64.deb
Size: 10
SHA256: cc

Package: libtool
Version: 3.0-1
Architecture: amd64
Filename: ./libtool_3.0-1_amd64.deb
Size: 10
SHA256: dd

Package: unrelated
Version: 1
Architecture: arm64
Filename: ./unrelated_1_arm64.deb
Size: 10
SHA256: ee
"""
    entries = mirror.parse_packages(index, ("amd64", "all"))
    wanted = {"x": software.Package("x", "tool", "1.0", "=")}
    chosen, why, external = mirror.select(entries, wanted, rpm=False)
    assert {n: e.version for n, e in chosen.items()} == {"tool": "1.0-1"}
    wanted = {"x": software.Package("x", "tool", None, "=")}
    chosen, why, external = mirror.select(entries, wanted, rpm=False)
    assert {n: e.version for n, e in chosen.items()} == {"tool": "2.0-1", "libtool": "2.0-1"}
    assert why == {"tool": "x", "libtool": "dependency"} and external == ["dkms", "libc6"]
    with pytest.raises(AifactoryError, match="tool 9.9 .x.: not in the upstream index .it has 1.0-1, 2.0-1"):
        mirror.select(entries, {"x": software.Package("x", "tool", "9.9", "=")}, rpm=False)


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "./a/../b.deb", "a b.deb", ""])
def test_an_unsafe_package_path_in_an_index_is_refused(path):
    with pytest.raises(AifactoryError, match="refusing the package path"):
        mirror._relpath(path)


# --- slow: against the stand-ins -------------------------------------------------------------

@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """NVIDIA's repositories for the two node OSes, built from the catalog, signed and served:
    ``(url, root folder, armoured key)``."""
    for tool, package in (("dpkg-deb", "dpkg"), ("apt-ftparchive", "apt-utils"), ("gpg", "gnupg"),
                          ("gpgv", "gpgv"), ("rpmbuild", "rpm"), ("rpmsign", "rpm"), ("rpmkeys", "rpm"),
                          ("createrepo_c", "createrepo-c"), ("modifyrepo_c", "createrepo-c")):
        require_tool(tool, package)
    top = tmp_path_factory.mktemp("upstream")
    gpg = top.parent / f"{top.name}-gpg"
    key = repository.signing_key(gpg)
    catalog = load_catalog()
    for os_id in OSES:
        nvidia = repository.nvidia_stubs(catalog, os_id)
        folder = repository.REPO_FOLDERS[os_id]
        build = repository.build_apt if nvidia.family == "debian" else repository.build_dnf
        build(nvidia, top / "nvidia" / folder / "x86_64", gpg, f"{repository.KEYS[folder]}.pub")
    try:
        with repository.serve(top) as url:
            yield url, top, key
    finally:
        subprocess.run(["gpgconf", "--homedir", str(gpg), "--kill", "gpg-agent"], capture_output=True)


def _plan(tmp_path: Path, os_id: str):
    data = yaml.safe_load(FACTORY.read_text())
    data["software"]["os"] = os_id
    path = tmp_path / f"factory-{os_id}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, planning.build(spec.load(path))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("os_id", OSES)
def test_the_bundle_holds_the_lock_verified_and_a_rerun_downloads_nothing(tmp_path, stand_in, os_id):
    url, _, key = stand_in
    _, plan = _plan(tmp_path, os_id)
    out = tmp_path / "bundle"
    result = mirror.mirror(plan, out, upstream={os_id: f"{url}/nvidia"}, keys={os_id: key})
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["lock_digest"] == plan.software.digest and manifest["os"] == os_id
    [repo] = manifest["repositories"]
    folder = f"{repository.REPO_FOLDERS[os_id]}/x86_64"
    assert repo["path"] == folder and repo["upstream"] == f"{url}/nvidia/{folder}/"
    # Every package the roles install, at the lock's version, each from its upstream URL.
    wanted = software.packages(plan.software, load_catalog())
    names = {p["name"]: p for p in repo["packages"]}
    for component in mirror.INSTALLED:
        if component in wanted:
            assert names[wanted[component].name]["for"] == component
    assert names[wanted["driver_utils"].name]["version"].split(":")[-1].startswith(plan.software.driver)
    assert repo["external"] == ["infiniband-diags"]  # NVLSM's tools come from the OS archive
    if os_id == "ubuntu-24.04":
        assert repo["index_signed"] and repo["signer"]
    # Every file on disk is in the manifest with its size and SHA256, and nothing else is there.
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == set(manifest["files"]) | {"manifest.json", ".aifactory-mirror.json"}
    for rel, entry in manifest["files"].items():
        assert (entry["size"], entry["sha256"]) == ((out / rel).stat().st_size, _sha(out / rel)), rel
    for package in repo["packages"]:
        assert manifest["files"][package["path"]]["url"].startswith(repo["upstream"])
    assert len(result.downloaded) == len(repo["packages"]) and result.kept == 0

    inodes = {p["path"]: (out / p["path"]).stat().st_ino for p in repo["packages"]}
    again = mirror.mirror(plan, out, upstream={os_id: f"{url}/nvidia"}, keys={os_id: key})
    assert again.downloaded == [] and again.kept == len(repo["packages"])
    assert {p["path"]: (out / p["path"]).stat().st_ino for p in repo["packages"]} == inodes
    assert again.manifest["repositories"] == manifest["repositories"]
    assert not [p for p in out.iterdir() if p.name.startswith(".aifactory-tmp-")]

    if os_id == "ubuntu-24.04":
        _apt_reads(out / folder, {p["name"]: p["version"] for p in repo["packages"]}, tmp_path / "apt")
    else:
        _dnf_metadata_reads(out / folder, {p["name"] for p in repo["packages"]})


def _apt_reads(folder: Path, packages: dict[str, str], root: Path) -> None:
    """apt itself, in a private configuration, updates from the bundle and sees every package."""
    require_tool("apt-get", "apt")
    for sub in ("etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d",
                "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").write_text("")
    (root / "etc/apt/sources.list").write_text(f"deb [trusted=yes arch=amd64] file:{folder} ./\n")
    opts = ["-o", f"Dir={root}", "-o", f"Dir::State::status={root}/var/lib/dpkg/status", "-o", "Debug::NoLocking=1",
            "-o", "APT::Architecture=amd64", "-o", "Dir::Etc::trusted=/dev/null", "-o", "APT::Sandbox::User=root",
            "-o", f"Dir::Etc::trustedparts={root}/etc/apt/trusted.gpg.d"]
    update = subprocess.run(["apt-get", *opts, "update"], capture_output=True, text=True)
    assert update.returncode == 0 and "W:" not in update.stdout + update.stderr, update.stdout + update.stderr
    shown = subprocess.run(["apt-cache", *opts, "show", *packages], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    seen = {}
    for stanza in shown.stdout.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        seen[fields["Package"]] = fields["Version"]
    assert seen == packages


def _dnf_metadata_reads(folder: Path, names: set[str]) -> None:
    ns = {"r": "http://linux.duke.edu/metadata/repo"}
    repomd = ET.parse(folder / "repodata/repomd.xml").getroot()
    data = {d.get("type"): d.find("r:location", ns).get("href") for d in repomd.findall("r:data", ns)}
    assert {"primary", "filelists", "other", "modules"} <= set(data)  # the driver's module streams kept
    entries = mirror.parse_primary(gzip.decompress((folder / data["primary"]).read_bytes()), ("x86_64", "noarch"))
    assert {e.name for e in entries} == names
    for e in entries:
        assert _sha(folder / e.path) == e.sha256
    assert b"nvidia-driver" in gzip.decompress((folder / data["modules"]).read_bytes())


@pytest.mark.slow
def test_a_corrupted_upstream_file_is_refused_and_leaves_nothing(tmp_path, stand_in):
    url, top, key = stand_in
    os_id = "ubuntu-24.04"
    _, plan = _plan(tmp_path, os_id)
    existing = tmp_path / "existing"
    good = mirror.mirror(plan, existing, upstream={os_id: f"{url}/nvidia"}, keys={os_id: key})
    nccl = next(p["path"] for p in good.manifest["repositories"][0]["packages"] if p["name"] == "libnccl2")
    copy = tmp_path / "upstream"
    shutil.copytree(top / "nvidia" / "ubuntu2404", copy / "nvidia" / "ubuntu2404")
    victim = copy / "nvidia" / nccl
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    victim.write_bytes(bytes(data))
    out = tmp_path / "bundle"
    with repository.serve(copy) as served:
        with pytest.raises(AifactoryError, match=r"libnccl2_.*: SHA256 [0-9a-f]{64} does not match the index's "
                                                 r"[0-9a-f]{64}; refused$"):
            mirror.mirror(plan, out, upstream={os_id: f"{served}/nvidia"}, keys={os_id: key})
        assert not out.exists()  # nothing half-written: not even the folder
        # Into an existing bundle missing that file: the run fails and the bundle stays as it was.
        (existing / nccl).unlink()
        before = {p.relative_to(existing).as_posix(): _sha(p) for p in existing.rglob("*") if p.is_file()}
        with pytest.raises(AifactoryError, match="libnccl2_.*does not match"):
            mirror.mirror(plan, existing, upstream={os_id: f"{served}/nvidia"}, keys={os_id: key})
    assert {p.relative_to(existing).as_posix(): _sha(p) for p in existing.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_the_signature_is_checked_against_the_role_key_id_or_the_given_key(tmp_path, stand_in):
    url, _, _ = stand_in
    _, plan = _plan(tmp_path, "ubuntu-24.04")
    # Without --key the stand-in's key is served as NVIDIA's file name, but its fingerprint does not end so.
    with pytest.raises(AifactoryError, match="3bf863cc.pub: key [0-9A-F]{40} is not the repository key 3bf863cc"):
        mirror.mirror(plan, tmp_path / "a", upstream={"ubuntu-24.04": f"{url}/nvidia"})
    _, rhel = _plan(tmp_path, "rhel-9")
    with pytest.raises(AifactoryError, match="D42D0685.pub: key [0-9A-F]{40} is not the repository key D42D0685"):
        mirror.mirror(rhel, tmp_path / "a", upstream={"rhel-9": f"{url}/nvidia"})
    other = repository.signing_key(tmp_path / "other-gpg")
    try:
        with pytest.raises(AifactoryError, match="signature not valid with the repository key"):
            mirror.mirror(plan, tmp_path / "b", upstream={"ubuntu-24.04": f"{url}/nvidia"},
                          keys={"ubuntu-24.04": other})
        # RHEL's repomd.xml is not signed here: each RPM's own signature is what is checked.
        with pytest.raises(AifactoryError, match=r"\.rpm: not signed by the repository key"):
            mirror.mirror(rhel, tmp_path / "b", upstream={"rhel-9": f"{url}/nvidia"}, keys={"rhel-9": other})
    finally:
        subprocess.run(["gpgconf", "--homedir", str(tmp_path / "other-gpg"), "--kill", "gpg-agent"],
                       capture_output=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_cli_mirrors_a_plan_json_and_prints_the_manifest(tmp_path, stand_in):
    url, _, key = stand_in
    factory, _ = _plan(tmp_path, "rhel-9")
    planned = subprocess.run([sys.executable, "-m", "aifactory", "plan", str(factory), "--format", "json"],
                             capture_output=True, text=True)
    assert planned.returncode == 0, planned.stderr
    (tmp_path / "plan.json").write_text(planned.stdout)
    argv = [sys.executable, "-m", "aifactory", "mirror", str(tmp_path / "plan.json"), "--out", str(tmp_path / "b"),
            "--upstream", f"rhel-9={url}/nvidia", "--key", f"rhel-9={key}"]
    done = subprocess.run([*argv, "--format", "json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["manifest"]["repositories"][0]["format"] == "dnf" and printed["kept"] == 0
    again = subprocess.run(argv, capture_output=True, text=True)
    assert again.returncode == 0 and "0 downloaded, 11 kept" in again.stdout, again.stdout + again.stderr
    wrong = subprocess.run([*argv[:-4], "--upstream", "ubuntu-24.04=http://127.0.0.1:1/"], capture_output=True,
                           text=True)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "aifactory: --upstream ubuntu-24.04: the plan's nodes run rhel-9, not ubuntu-24.04"
    assert os.path.isfile(tmp_path / "b" / "manifest.json")
