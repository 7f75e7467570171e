"""The rdma role on GCP: each GPU network gets Google's NCCL plugin where the rendered NCCL
settings look for it, and A3 Mega gets its data path (aperture devices, dmabuf import helper, RxDM).

- The plan of a spec with A3 High, A3 Mega, A3 Ultra, A4 and A4X pools goes through the
  inventory into the role's variables; the folder each pool's plugin goes to, and the linker path
  the role writes, are the ones the same plan's ``/etc/nccl.conf`` names (TCPXO's tuner and
  guest-config files, gIB's tuner file, the aperture device folder).
- The rendered units and rules go to their consumers: ``systemd-analyze verify`` on the RxDM
  unit, ``udevadm test`` on the aperture rule (in a private mount namespace, against a PCI
  device of this machine), the modules-load file read as systemd-modules-load reads it.
- Against a stand-in docker, a new image version empties the folder and installs again, and a
  re-run installs nothing (the folder's ``.installed-from`` marker).

Sources (checked 2026-12-03): GoogleCloudPlatform/slurm-gcp
tools/prologs-epilogs/receive-data-path-manager-mega at f10bb0e967cc6d29b03a21b5a80b7a7c2d7f151c;
GoogleCloudPlatform/cluster-toolkit examples/machine-learning/a3-megagpu-8g/a3mega-slurm-blueprint.yaml
at 6c6a9a0341412c6b0897ea7a4e9737a245d7678a.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aifactory import plan as planning
from aifactory import spec
from aifactory.catalog import load as load_catalog
from aifactory.inventory.plan import pool_vars
from tests.conftest import need_root, require_tool
from tests.playbooks.test_roles import BIN, ENV, PLAYBOOKS
from tests.render.test_nccl_hca import conf_lines

# ansible-playbook runs the role's tasks and templates: a real external program.
pytestmark = pytest.mark.slow

ROLE = PLAYBOOKS / "roles" / "rdma"
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text())

SPEC = """
name: g
sites: [{name: gcp-usc1, provider: gcp, region: us-central1}]
fabrics: [{name: high, type: gpudirect-tcpx}, {name: mega, type: gpudirect-tcpxo}, {name: rdma, type: roce}]
pools:
  - {name: high, site: gcp-usc1, provider: gcp, system: a3-highgpu-8g, nodes: 2, fabric: high, zones: [us-central1-a]}
  - {name: mega, site: gcp-usc1, provider: gcp, system: a3-megagpu-8g, nodes: 2, fabric: mega, zones: [us-central1-a]}
  - {name: ultra, site: gcp-usc1, provider: gcp, system: a3-ultragpu-8g, nodes: 2, fabric: rdma, zones: [us-central1-a]}
  - {name: a4, site: gcp-usc1, provider: gcp, system: a4-highgpu-8g, nodes: 2, fabric: rdma, zones: [us-central1-a]}
  - {name: a4x, site: gcp-usc1, provider: gcp, system: a4x-highgpu-4g, nodes: 2, fabric: rdma, zones: [us-central1-a]}
"""
# The plugin each pool gets, and the folder Google's recipes install it to.
EXPECTED = {"high": ("tcpx", "/var/lib/tcpx"), "mega": ("tcpxo", "/var/lib/tcpxo"),
            "ultra": ("gib", "/usr/local/gib"), "a4": ("gib", "/usr/local/gib"), "a4x": ("gib", "/usr/local/gib")}
RENDERED = {
    "linker": ("gcp-nccl-plugin.conf.j2", "gcp-nccl-plugin.conf"),
    "udev": ("a3-megagpu-aperture.rules.j2", "00-a3-megagpu.rules"),
    "modules": ("dmabuf-import-helper.conf.j2", "dmabuf-import-helper.conf"),
    "unit": ("tcpxo-rxdm.service.j2", "tcpxo-rxdm.service"),
}


def _playbook(tmp_path: Path, inventory: dict, tasks: list, extra: dict | None = None,
              handlers: list | None = None) -> subprocess.CompletedProcess:
    """Run ``tasks`` with the role's defaults (as inventory group vars, so that host vars such as
    the inventory's override them, as they do a role default) and its vars/main.yml."""
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"all": {"vars": DEFAULTS, "hosts": inventory}}))
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "all", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "vars/main.yml")],
        "handlers": handlers or [], "tasks": tasks}]))
    if not (tmp_path / "templates").exists():  # the role's templates, found next to the play
        (tmp_path / "templates").symlink_to(ROLE / "templates")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv), str(play),
                           "-e", json.dumps({"ansible_python_interpreter": sys.executable, **(extra or {})})],
                          capture_output=True, text=True, env=ENV)


def _render(tmp_path: Path, hosts: dict[str, dict], extra: dict | None = None) -> dict[str, dict]:
    """Per host: the role's GCP values and its rendered files (none where it gets no plugin)."""
    inventory = {}
    for host, hostvars in hosts.items():
        (tmp_path / host).mkdir()
        inventory[host] = {**hostvars, "_out": str(tmp_path / host)}
    tasks = [
        # The architecture comes from the plan (A4X is arm64), not from this machine's facts.
        {"name": "Take the architecture from the plan", "ansible.builtin.set_fact": {
            "_rdma_arch": "{{ 'arm64-sbsa' if _cpu_arch == 'arm64' else 'x86_64' }}"}},
        {"name": "Write the role's GCP values", "ansible.builtin.copy": {
            "dest": "{{ _out }}/values.json", "mode": "0644", "content": (
                "{{ {'plugin': _rdma_gcp_plugin, 'install': _rdma_gcp_plugins[_rdma_gcp_plugin]"
                " if _rdma_gcp_plugin else None, 'aperture': _rdma_tcpxo_aperture_dir,"
                " 'unit': _rdma_tcpxo_rxdm_unit, 'udev': _rdma_tcpxo_udev_rules,"
                " 'modules': _rdma_tcpxo_modules_load, 'linker': _rdma_gcp_linker_conf} | to_json }}")}},
    ]
    for key, (src, dest) in RENDERED.items():
        tasks.append({"name": f"Render {src}", "ansible.builtin.template": {
            "src": src, "dest": "{{ _out }}/" + dest, "mode": "0644"},
            **({"when": "_rdma_gcp_plugin != ''"} if key == "linker" else {})})
    proc = _playbook(tmp_path, inventory, tasks, extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = {}
    for host in hosts:
        got = json.loads((tmp_path / host / "values.json").read_text())
        for key, (_, dest) in RENDERED.items():
            path = tmp_path / host / dest
            got[key + "_text"] = path.read_text() if path.exists() else None
            got[key + "_path"] = path
        out[host] = got
    return out


@pytest.fixture(scope="module")
def gcp(tmp_path_factory):
    """The plan of SPEC, each pool's /etc/nccl.conf, and what the role makes of its inventory."""
    built = planning.build(spec.load_string(SPEC))
    catalog = load_catalog()
    hosts, confs = {}, {}
    for pool in built.pools:
        pv = pool_vars(pool, built, catalog)
        hosts[pool.name] = {k: v for k, v in pv.items() if k.startswith("rdma_")} | {"_cpu_arch": pool.cpu_arch}
        confs[pool.name] = {k: v[0] for k, v in conf_lines(pv["nccl_conf_content"]).items()}
    return _render(tmp_path_factory.mktemp("gcp"), hosts), confs


def test_each_gcp_pool_gets_its_plugin_in_googles_folder(gcp):
    role, _ = gcp
    assert {h: (v["plugin"], v["install"]["dir"]) for h, v in role.items()} == EXPECTED
    for host, values in role.items():
        # Only the linker path file names the plugin folder on the node; one line, its lib64/.
        lines = [ln for ln in values["linker_text"].splitlines() if ln and not ln.startswith("#")]
        assert lines == [EXPECTED[host][1] + "/lib64"], host
    assert role["a4x"]["install"]["image"].startswith(DEFAULTS["rdma_gcp_gib_image_arm64"] + ":")
    assert role["ultra"]["install"]["image"] == f"{DEFAULTS['rdma_gcp_gib_image']}:{DEFAULTS['rdma_gcp_gib_version']}"


def test_tcpxo_files_nccl_reads_are_in_the_folder_the_role_fills(gcp):
    role, confs = gcp
    lib = role["mega"]["install"]["dir"] + "/lib64"
    for name in ("NCCL_TUNER_CONFIG_PATH", "NCCL_SHIMNET_GUEST_CONFIG_CHECKER_CONFIG_FILE"):
        assert os.path.dirname(confs["mega"][name]) == lib, name
    # NCCL_NET=FasTrak and the tuner are loaded from the linker path: the folder the role adds.
    assert confs["mega"]["NCCL_NET"] == "FasTrak" and confs["mega"]["NCCL_TUNER_PLUGIN"] == "libnccl-tuner.so"
    assert lib in role["mega"]["linker_text"].splitlines()
    assert confs["mega"]["NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY"] == role["mega"]["aperture"]


@pytest.mark.parametrize("pool", ["ultra", "a4", "a4x"])
def test_gib_files_nccl_reads_are_in_the_folder_the_role_fills(gcp, pool):
    role, confs = gcp
    assert confs[pool]["NCCL_NET"] == "gIB"
    if "NCCL_TUNER_CONFIG_PATH" in confs[pool]:  # A4X: set_nccl_env.sh picks it on the node
        assert confs[pool]["NCCL_TUNER_CONFIG_PATH"].startswith(role[pool]["install"]["dir"] + "/configs/")
    else:
        assert pool == "a4x"


def test_gib_is_only_for_roce_on_gcp(tmp_path):
    # RoCE elsewhere (OCI, on-premises) uses NCCL's own IB transport: no GCP plugin, no linker file.
    got = _render(tmp_path, {"oci": {"rdma_fabric": "roce", "_cpu_arch": "x86_64"},
                             "none": {"rdma_fabric": "none", "_cpu_arch": "x86_64"}})
    assert {h: (v["plugin"], v["linker_text"]) for h, v in got.items()} == {"oci": ("", None), "none": ("", None)}


def test_rxdm_unit_passes_systemd_analyze_verify(gcp, tmp_path):
    """The unit as rendered, with the docker path pointed at a stand-in so that verify finds the
    executable, and a docker.service for Requires= to resolve."""
    analyze = require_tool("systemd-analyze", "systemd")
    role, _ = gcp
    text = role["mega"]["unit_text"]
    assert f'ExecStart="{DEFAULTS["rdma_gcp_docker"]}" run ' in text
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\nexit 0\n")
    docker.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    (units / "docker.service").write_text(f"[Service]\nExecStart={docker}\n")
    unit = units / "tcpxo-rxdm.service"
    unit.write_text(text.replace(f'"{DEFAULTS["rdma_gcp_docker"]}"', f'"{docker}"'))
    proc = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          env=dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:", SYSTEMD_LOG_LEVEL="notice"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tcpxo-rxdm.service" not in proc.stderr, proc.stderr


def _exec_argv(unit_text: str, key: str) -> list[str]:
    """The argv systemd takes from ``key=`` (continuation lines joined, %% and $$ undone)."""
    joined = re.sub(r"\\\n\s*", " ", unit_text)
    line = next(ln for ln in joined.splitlines() if ln.startswith(key + "="))
    return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(line[len(key) + 1:])]


def test_rxdm_unit_runs_the_pinned_image_with_slurm_gcps_options(gcp):
    role, _ = gcp
    argv = _exec_argv(role["mega"]["unit_text"], "ExecStart")
    image = f"{DEFAULTS['rdma_gcp_rxdm_image']}:{DEFAULTS['rdma_gcp_rxdm_version']}"
    assert argv[:2] == [DEFAULTS["rdma_gcp_docker"], "run"]
    assert argv[argv.index(image) + 1:] == DEFAULTS["rdma_gcp_rxdm_args"]
    for option in ("--privileged", "--network=host", "--cap-add=NET_ADMIN"):
        assert option in argv
    assert argv[argv.index("--gpus") + 1] == "all"
    assert "/dev/dmabuf_import_helper:/dev/dmabuf_import_helper" in argv
    assert "WantedBy=multi-user.target" in role["mega"]["unit_text"]


def test_rxdm_arguments_reach_systemd_as_single_words(tmp_path):
    """Role defaults with spaces, quotes, specifiers and variables stay one literal word each."""
    analyze = require_tool("systemd-analyze", "systemd")
    tricky = ["--a=b c", 'say "hi"', "50%n", "$HOME", "back\\slash"]
    got = _render(tmp_path, {"mega": {"rdma_fabric": "gpudirect-tcpxo", "_cpu_arch": "x86_64"}},
                  extra={"rdma_gcp_rxdm_args": tricky})
    text = got["mega"]["unit_text"]
    argv = _exec_argv(text, "ExecStart")
    assert argv[-len(tricky):] == tricky
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\n")
    docker.chmod(0o755)
    (tmp_path / "docker.service").write_text(f"[Service]\nExecStart={docker}\n")
    unit = tmp_path / "tcpxo-rxdm.service"
    unit.write_text(text.replace(f'"{DEFAULTS["rdma_gcp_docker"]}"', f'"{docker}"'))
    proc = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          env=dict(os.environ, SYSTEMD_UNIT_PATH=f"{tmp_path}:"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tcpxo-rxdm.service" not in proc.stderr, proc.stderr


def test_dmabuf_import_helper_is_loaded_at_boot(gcp):
    role, _ = gcp
    # systemd-modules-load: one module name per line, '#' and ';' start comments.
    modules = [ln.strip() for ln in role["mega"]["modules_text"].splitlines()
               if ln.strip() and not ln.lstrip().startswith(("#", ";"))]
    assert modules == ["import-helper"]  # `modprobe import-helper`: slurm-gcp's RxDM prolog
    assert role["mega"]["modules"].startswith("/etc/modules-load.d/") and role["mega"]["modules"].endswith(".conf")


def test_udevadm_binds_the_aperture_devices(gcp, tmp_path):
    """udevadm test with the rendered rule as the only rule in /etc/udev/rules.d (a private mount
    namespace), its vendor and device ids swapped for those of a PCI device this machine has."""
    udevadm = require_tool("udevadm", "udev")
    unshare = require_tool("unshare", "util-linux")
    need_root()
    role, _ = gcp
    text = role["mega"]["udev_text"]
    assert 'ATTR{vendor}=="0x1ae0", ATTR{device}=="0x0084"' in text
    pci = sorted(Path("/sys/bus/pci/devices").glob("*"))
    if not pci:
        pytest.skip("no PCI device in /sys to run the rule against")
    dev = pci[0]
    vendor, device = ((dev / n).read_text().strip() for n in ("vendor", "device"))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "00-a3-megagpu.rules").write_text(
        text.replace("0x1ae0", vendor).replace("0x0084", device))
    script = (f"mount --bind {shlex.quote(str(rules))} /etc/udev/rules.d && mkdir -p /run/udev && "
              f"mount -t tmpfs tmpfs /run/udev && {shlex.quote(udevadm)} test --action=add {shlex.quote(str(dev))}")
    proc = subprocess.run([unshare, "-m", "sh", "-c", script], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert not re.search(r"00-a3-megagpu\.rules:\d+ (Invalid|Unknown|Failed)", out), out
    aperture = role["mega"]["aperture"]
    name = dev.name
    runs = re.findall(r"^run: '(.*)'$", out, re.M)
    assert f"/usr/bin/mkdir --mode=0755 -p {aperture}" in runs, out
    mount = next(r for r in runs if r.startswith("/usr/bin/systemd-mount"))
    assert mount.endswith(f" {aperture}/{name}") and os.path.realpath(mount.split()[-2]) == str(dev.resolve())
    assert f"/usr/bin/bash -c '/usr/bin/chmod 0666 {aperture}/{name}/resource*'" in runs
    assert "TAGS=:systemd:" in out


# A stand-in for docker: `run ... --volume HOST:CTR ... IMAGE ARGS` writes what the image's
# installer would into HOST (the plugin, and a file named after the version), and logs the call.
FAKE_DOCKER = """#!/usr/bin/env python3
import pathlib, sys
argv = sys.argv[1:]
assert argv[0] == "run", argv
host = argv[argv.index("--volume") + 1].split(":")[0]
image = next(a for a in argv if a.startswith("registry.test/"))
args = argv[argv.index(image) + 1:]
assert argv[argv.index("--entrypoint") + 1] == "/scripts/container_entry.sh", argv
version = image.rsplit(":", 1)[1]
lib = pathlib.Path(host, "lib64")
lib.mkdir(parents=True, exist_ok=True)
(lib / "libnccl-net.so").write_text(image)
(lib / ("only-in-" + version)).write_text(version)
with open(sys.argv[0] + ".log", "a") as log:
    log.write(" ".join([image] + args) + "\\n")
"""


def _install(tmp_path: Path, fabric: str, version: str, **hostvars) -> int:
    """Run the role's GCP tasks for one node against the stand-in docker; the changed count."""
    docker = tmp_path / "docker"
    if not docker.exists():
        docker.write_text(FAKE_DOCKER)
        docker.chmod(0o755)
    image_var = {"gpudirect-tcpx": "tcpx", "roce": "gib"}[fabric]
    host = {"rdma_fabric": fabric, "rdma_gcp_docker": str(docker),
            f"rdma_gcp_{image_var}_image": f"registry.test/{image_var}",
            f"rdma_gcp_{image_var}_version": version,
            f"rdma_gcp_{image_var}_dir": str(tmp_path / "plugin"),
            "_rdma_gcp_linker_conf": str(tmp_path / "gcp-nccl-plugin.conf"), **hostvars}
    handlers = [{"name": "Refresh the linker cache for the GCP NCCL plugin", "ansible.builtin.debug": {"msg": "ldconfig"}},
                {"name": "Restart RxDM", "ansible.builtin.debug": {"msg": "restart"}}]
    tasks = [{"name": "Run the GCP tasks", "ansible.builtin.include_tasks": str(ROLE / "tasks/gcp.yml")}]
    # Host vars lose to the play's vars_files: the redirected linker path goes in as an extra var.
    proc = _playbook(tmp_path, {"node": host}, tasks, handlers=handlers,
                     extra={"_rdma_gcp_linker_conf": host.pop("_rdma_gcp_linker_conf"),
                            "_rdma_arch": "x86_64"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(re.search(r"node\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout).group(1))


@pytest.mark.parametrize("fabric,hostvars", [("gpudirect-tcpx", {}), ("roce", {"rdma_gcp_gib": True})],
                         ids=["tcpx", "gib"])
def test_a_new_image_version_reinstalls_the_plugin(tmp_path, fabric, hostvars):
    need_root()  # the role creates the folder as root:root
    tasks = (ROLE / "tasks/gcp.yml").read_text()
    assert "creates:" not in tasks  # a `creates:` guard never lets a new version in
    plugin, log = tmp_path / "plugin", tmp_path / "docker.log"

    assert _install(tmp_path, fabric, "v1", **hostvars) > 0
    assert (plugin / "lib64" / "only-in-v1").exists()
    assert log.read_text().splitlines()[0].startswith("registry.test/")
    marker = (plugin / ".installed-from").read_text()
    assert marker.startswith(log.read_text().splitlines()[0].split()[0])
    assert (tmp_path / "gcp-nccl-plugin.conf").read_text().splitlines()[-1] == f"{plugin}/lib64"

    assert _install(tmp_path, fabric, "v1", **hostvars) == 0  # the node has it: nothing runs
    assert len(log.read_text().splitlines()) == 1

    assert _install(tmp_path, fabric, "v2", **hostvars) > 0  # an upgrade installs the new image
    assert len(log.read_text().splitlines()) == 2
    assert (plugin / "lib64" / "only-in-v2").exists() and not (plugin / "lib64" / "only-in-v1").exists()
    assert (plugin / ".installed-from").read_text().split()[0].endswith(":v2")

    assert _install(tmp_path, fabric, "v1", **hostvars) > 0  # and so does a downgrade
    assert len(log.read_text().splitlines()) == 3

    # rdma_install false (packages baked into the image): nothing is installed, config still written.
    assert _install(tmp_path, fabric, "v3", rdma_install=False, **hostvars) == 0
    assert len(log.read_text().splitlines()) == 3


def test_rxdm_is_started_only_where_systemd_runs():
    tasks = yaml.safe_load((ROLE / "tasks/tcpxo.yml").read_text())
    start = next(t for t in tasks if t.get("ansible.builtin.systemd_service", {}).get("state") == "started")
    assert "_rdma_systemd.stat.exists" in start["when"]
    enable = next(t for t in tasks if t.get("ansible.builtin.systemd_service", {}).get("enabled"))
    assert enable["environment"]["SYSTEMD_OFFLINE"]  # a chroot or image build enables it offline
    load = next(t for t in tasks if "community.general.modprobe" in t)
    assert "_rdma_systemd.stat.exists" in load["when"]
