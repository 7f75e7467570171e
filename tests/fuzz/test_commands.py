"""Every command that reads untrusted input, fed mutated copies of every example stack.

validate, plan (json, markdown, table), render --out (then --check), inventory FILE --out, pxe
(declared on-prem hosts, SSH key files, inventory JSON and PXE options), diff (mutated
plan.json files) and preview (mutated Pulumi.yaml / Pulumi.<stack>.yaml in a copied stack).
Each case runs in a sandbox (a fresh one for the commands that write; one reused sandbox for
validate, plan and diff, which must leave it exactly as it was) and must keep the contract of
:mod:`tests.fuzz.harness`: exit 0 or 1, no traceback, located errors, nothing changed outside
--out, no payload run, bounded time and memory. Nearly all cases run ``aifactory.cli.main`` in this process; the few that
could exhaust memory (alias bombs, /dev/zero, multi-million-node plans) and a small share of
the rest run the console script in a process of its own under ``RLIMIT_AS``.

The examples are derandomized: a red run is reproducible on any machine with the same code.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz import harness, hostile
from tests.fuzz.harness import Sandbox, check_contract, invoke, invoke_subprocess, scaled

FUZZ = dict(deadline=None, derandomize=True, database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                   HealthCheck.large_base_example])
# Cases that take seconds when they fail (a subprocess hitting its timeout, a huge render): report
# the first failing example instead of spending minutes shrinking it.
NO_SHRINK = dict(phases=[Phase.explicit, Phase.generate])

# Per command; the conftest prints the session's totals. Together with test_hostile_specs.py
# they are over 20,000 generated cases in the default run.
# AIFACTORY_FUZZ_SCALE scales them (harness.scaled).
EXAMPLES = {name: scaled(n) for name, n in {
    "validate": 3600, "plan": 2500, "render": 1000, "inventory": 1500, "pxe": 2000, "diff": 4500, "preview": 200,
    "subprocess": 30}.items()}

# A campus render is ~26 MB of files: keep it in the mix but rare.
RENDER_STACKS = [n for n in sorted(hostile.SPECS) for _ in range(1 if n == "campus-10gw" else 8)]
# PXE needs on-prem pools; the other stacks stay in the mix (they must be refused cleanly).
PXE_STACKS = [n for n in sorted(hostile.SPECS) for _ in range(3 if n in ("campus-10gw", "multicloud", "onprem-dgx",
                                                                         "superpod-h100") else 1)]
PREVIEW_STACKS = [n for n in sorted(hostile.SPECS) for _ in range(1 if n == "multicloud" else 2 if n == "aws-p5" else 3)]
# Plans this large render hundreds of megabytes: they run in a process of their own.
BIG_PLAN_NODES = 2_000_000
RISKY_BYTES = (b"/dev/zero", b"/proc/", b"&a0 ")

DNSMASQ_LINE = re.compile(r"^(#.*|[a-z][a-z0-9-]*(=[^\r\x00-\x08\x0b-\x1f]*)?)?$")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    with harness.fast_base(tmp_path_factory.mktemp("commands")) as folder:
        yield folder


def _run(args, box: Sandbox, tally, command: str, accepted: bool = True, **contract):
    result = invoke(args, box.root)
    if result.exception is not None or "aifactory: internal error:" in result.stderr:
        tally("uncaught")
    if result.code == 0 and accepted:
        tally("accepted", command=command)
    check_contract(result, box, **contract)
    return result


def _plan_nodes(path: Path) -> int:
    """The node count of a valid spec (0 when it is not valid): to route huge plans to a subprocess."""
    from aifactory import plan as planning
    from aifactory import spec

    try:
        result = planning.validate(spec.load(path))
    except Exception:  # noqa: BLE001 - the command under test reports it
        return 0
    return 0 if result.errors else int(result.plan.totals.get("nodes", 0))


# YAML and JSON quote a value's line breaks (a folded quoted scalar may start a line with
# anything and still be one value); every other file the tools write is read line by line.
STRUCTURED = (".yml", ".yaml", ".json", "/user-data", "/meta-data", "/vendor-data")


def _no_forged_lines(box: Sandbox, result) -> None:
    for rel, data in box.out_files().items():
        if rel.endswith(STRUCTURED):
            continue
        for line in data.decode("utf-8", "replace").splitlines():
            assert not line.lstrip(" -|>").startswith(harness.FORGED), \
                f"{rel}: a value with a line break forged the line {line!r}\n{result.describe()}"


# -- validate and plan -----------------------------------------------------------------------


@settings(max_examples=EXAMPLES["validate"], **FUZZ)
@given(case=st.one_of(hostile.spec_mutant(hosts=0.3), hostile.attack_spec(), hostile.near_valid(hosts=0.3)))
def test_validate(case, base, fuzz_tally):
    fuzz_tally("in-process", command="validate")
    with harness.reused_sandbox("validate", base) as box:
        f = box.write("factory.yaml", case[1])
        box.freeze(only=())
        result = _run(["validate", f], box, fuzz_tally, "validate", files=[f])
        if result.code == 0:
            assert result.stdout.startswith(f"{f}: valid"), result.describe()


@settings(max_examples=EXAMPLES["plan"], **FUZZ)
@given(case=st.one_of(hostile.spec_mutant(hosts=0.3), hostile.attack_spec(), hostile.near_valid(hosts=0.3)), fmt=st.sampled_from(["json"] * 4 + ["markdown"] * 3 + ["table"]))
def test_plan(case, fmt, base, fuzz_tally):
    fuzz_tally("in-process", command="plan")
    with harness.reused_sandbox("plan", base) as box:
        f = box.write("factory.yaml", case[1])
        box.freeze(only=())
        result = _run(["plan", f, "-f", fmt], box, fuzz_tally, "plan", files=[f])
        if result.code == 1:
            assert result.stdout == "", "a refused plan prints nothing on stdout\n" + result.describe()
        if result.code == 0 and fmt == "json":
            import json

            assert isinstance(json.loads(result.stdout), dict), result.describe()
        assert not any(line.lstrip("|- ").startswith(harness.FORGED) for line in result.stdout.splitlines()), \
            result.describe()


# -- render, inventory -----------------------------------------------------------------------


@settings(max_examples=EXAMPLES["render"], **FUZZ, **NO_SHRINK)  # a failing huge plan costs seconds a try
@given(case=st.one_of(hostile.spec_mutant(names=RENDER_STACKS, hosts=0.3), hostile.attack_spec(names=RENDER_STACKS),
                      hostile.near_valid(names=RENDER_STACKS, hosts=0.5),
                      hostile.valid_spec(names=RENDER_STACKS, hosts=0.5)))
def test_render_then_check(case, base, fuzz_tally):
    fuzz_tally("in-process", command="render")
    with harness.sandbox(base) as box:
        f = box.write("factory.yaml", case[1])
        box.freeze()
        args = ["render", f, "--out", box.out]
        if _plan_nodes(f) > BIG_PLAN_NODES:
            result = invoke_subprocess(args, box.root, timeout=120)
            check_contract(result, box, files=[f])
        else:
            result = _run(args, box, fuzz_tally, "render", files=[f])
        _no_forged_lines(box, result)
        if result.code == 0:
            assert not [p for p in box.out.rglob(".aifactory-tmp*")], "temporary files left behind"
            check = _run(["render", f, "--out", box.out, "--check"], box, fuzz_tally, "render", accepted=False,
                         files=[f])
            assert check.code == 0, "render --check right after render must find no drift\n" + check.describe()


@settings(max_examples=EXAMPLES["inventory"], **FUZZ)
@given(case=st.one_of(hostile.spec_mutant(hosts=0.4), hostile.attack_spec(), hostile.near_valid(hosts=0.5),
                      hostile.valid_spec(hosts=0.5)))
def test_inventory(case, base, fuzz_tally):
    fuzz_tally("in-process", command="inventory")
    with harness.sandbox(base) as box:
        f = box.write("factory.yaml", case[1])
        box.freeze()
        result = _run(["inventory", f, "--out", box.out], box, fuzz_tally, "inventory", files=[f])
        _no_forged_lines(box, result)
        if result.code == 0:
            # A rerun into the folder the command itself wrote is the normal GitOps loop.
            again = _run(["inventory", f, "--out", box.out], box, fuzz_tally, "inventory", accepted=False, files=[f])
            assert again.code == 0, "a rerun into its own output folder must succeed\n" + again.describe()


# -- pxe -------------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES["pxe"], **FUZZ)
@given(case=st.one_of(hostile.spec_mutant(names=PXE_STACKS, hosts=0.8), hostile.attack_spec(names=PXE_STACKS),
                      hostile.near_valid(names=PXE_STACKS, hosts=0.9),
                      hostile.valid_spec(names=PXE_STACKS, hosts=0.9)),
       hostile_settings=st.integers(0, 2), data=st.data())
def test_pxe(case, hostile_settings, data, base, fuzz_tally):
    """A third of the cases attack the PXE settings too (server IP, key files, --inventory, options);
    the rest give clean ones, so that the spec's own hostile values reach the writer."""
    fuzz_tally("in-process", command="pxe")
    attack = hostile_settings == 0
    with harness.sandbox(base) as box:
        f = box.write("factory.yaml", case[1])
        server_ip = data.draw(hostile.server_ips) if attack else hostile.SERVER_IP
        keys = data.draw(st.lists(hostile.ssh_key_file(), min_size=1, max_size=2)) if attack else [
            hostile.SSH_KEY.encode() + b"\n"]
        args = ["pxe", f, "--out", box.out, "--server-ip", server_ip]
        for i, key in enumerate(keys):
            args += ["--ssh-key", box.write(f"id_{i}.pub", key)]
        if data.draw(st.booleans()):
            inv = data.draw(hostile.inventory_json(case[2], clean=not attack))
            args += ["--inventory", box.write("inventory.json", inv)]
        extra, usage = data.draw(hostile.pxe_options()) if attack else ([], False)
        args += extra
        box.freeze()
        result = _run(args, box, fuzz_tally, "pxe", files=[f], usage_ok=usage)
        _no_forged_lines(box, result)
        if result.code == 0:
            conf = (box.out / "dnsmasq.conf").read_text()
            bad = [line for line in conf.splitlines() if not DNSMASQ_LINE.match(line) or line.startswith(",")]
            assert not bad, f"dnsmasq.conf has lines a value broke: {bad[:3]}\n{result.describe()}"


# -- diff ------------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES["diff"], **FUZZ)
@given(old=st.one_of(st.sampled_from(sorted(hostile.SPECS)), hostile.plan_mutant()), new=hostile.plan_mutant(),
       fmt=st.sampled_from(["table", "table", "markdown"]), swap=st.booleans())
def test_diff(old, new, fmt, swap, base, fuzz_tally):
    fuzz_tally("in-process", command="diff")
    import json

    with harness.reused_sandbox("diff", base) as box:
        old_bytes = old if isinstance(old, bytes) else json.dumps(hostile.plans()[old]).encode()
        a, b = box.write("old/plan.json", old_bytes), box.write("new/plan.json", new)
        if swap:
            a, b = b, a
        box.freeze(only=())
        result = _run(["diff", a, b, "-f", fmt], box, fuzz_tally, "diff")
        if result.code == 1:
            line = result.stderr.strip().splitlines()[-1]
            assert str(a) in line or str(b) in line, \
                "a refused plan file must be named\n" + result.describe()
        assert not any(line.lstrip("|- ").startswith(harness.FORGED) for line in result.stdout.splitlines()), \
            "a name with a line break forged a line of the diff\n" + result.describe()


# -- preview ---------------------------------------------------------------------------------


def _copy_stack(name: str, box: Sandbox) -> Path:
    src, dst = hostile.REPO / "stacks" / name, box.inputs / name
    dst.mkdir()
    for p in src.iterdir():
        if p.is_file() and (p.suffix in (".yaml", ".py")):
            shutil.copyfile(p, dst / p.name)
    return dst


@settings(max_examples=EXAMPLES["preview"], **FUZZ, **NO_SHRINK)
@given(data=st.data(), name=st.sampled_from(PREVIEW_STACKS), fmt=st.sampled_from(["json", "table"]),
       stack=st.sampled_from([None] * 6 + ["dev", "nonexistent", "../dev", "dev\n"]))
def test_preview(data, name, fmt, stack, base, fuzz_tally):
    files = data.draw(hostile.stack_config_mutant(name))
    with harness.sandbox(base) as box:
        folder = _copy_stack(name, box)
        for rel, content in files.items():
            (folder / rel).write_bytes(content)
        args = ["preview", folder, "-f", fmt] + (["--stack", stack] if stack is not None else [])
        box.freeze()
        inputs = [folder / rel for rel in files] + [folder / "factory.yaml"]
        if any(marker in content for content in files.values() for marker in RISKY_BYTES):
            fuzz_tally("subprocess", command="preview")
            result = invoke_subprocess(args, box.root, timeout=40, memory=2 * 1024 ** 3)
        else:
            fuzz_tally("in-process", command="preview")
            result = invoke(args, box.root)
            if result.exception is not None or "aifactory: internal error:" in result.stderr:
                fuzz_tally("uncaught")
        if result.code == 0:
            fuzz_tally("accepted", command="preview")
        check_contract(result, box, files=inputs, time_limit=harness.PREVIEW_TIME_LIMIT_S)
        if stack not in (None, "dev"):
            assert result.code == 1, "a --stack without its Pulumi.<stack>.yaml must fail\n" + result.describe()


# -- a share through the console script ------------------------------------------------------


@settings(max_examples=EXAMPLES["subprocess"], **FUZZ, **NO_SHRINK)
@given(case=st.one_of(hostile.spec_mutant(hosts=0.5), hostile.attack_spec()),
       command=st.sampled_from(["validate", "plan", "render", "inventory", "pxe"]))
def test_console_script(case, command, base, fuzz_tally):
    """The exit status and stderr of a real interpreter, not of a patched ``sys.argv``."""
    fuzz_tally("subprocess", command=command)
    with harness.sandbox(base) as box:
        f = box.write("factory.yaml", case[1])
        args = {"validate": ["validate", f], "plan": ["plan", f, "-f", "json"],
                "render": ["render", f, "--out", box.out], "inventory": ["inventory", f, "--out", box.out],
                "pxe": ["pxe", f, "--out", box.out, "--server-ip", hostile.SERVER_IP,
                        "--ssh-key", box.write("id.pub", hostile.SSH_KEY + "\n")]}[command]
        box.freeze()
        result = invoke_subprocess(args, box.root, timeout=60, memory=3 * 1024 ** 3)
        # The interpreter's own start-up is in the time: allow for it.
        check_contract(result, box, files=[f], time_limit=harness.TIME_LIMIT_S + 5)
