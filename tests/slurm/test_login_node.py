"""A login node for real: playbooks/slurm.yml into a Debian root filesystem through the chroot connection.

Debian 12 ships Slurm 22.05, which has no sackd: the login node gets the rendered slurm.conf.
Debian 13 ships 24.11: sackd fetches the configuration from the controllers, and the node keeps no
slurm.conf of its own. Either way the node has the client commands and munge, held at the lock's
release, and no slurmd; a dry run changes nothing, and a second run has nothing to do. The
inventory is what `aifactory inventory` writes for a login group: a ``slurm_login_<cluster>``
child of ``slurm_login`` with the cluster's controllers, the lock's release and slurm.conf.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aifactory import lab
from aifactory.configure.rootfs import default_cache_dir, ensure_rootfs
from tests.conftest import need_root, require_tool
from tests.configure.conftest import in_root

pytestmark = [pytest.mark.slow, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
BIN = Path(sys.executable).parent
HOST, CTL = "login-0001", "ctl-0001"
# What the controllers hold; the login node's commands must read exactly this.
SLURM_CONF = f"""ClusterName=lab
SlurmctldHost={CTL}(10.231.9.1)
SlurmUser=slurm
AuthType=auth/munge
SlurmctldParameters=enable_configless
NodeName=gpu-[0001-0002] CPUs=1 State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES State=UP
"""
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@pytest.fixture(params=[("bookworm", "22.05"), ("trixie", "24.11")], ids=["debian-12", "debian-13"])
def login_root(request, tmp_path_factory):
    need_root()
    require_tool("debootstrap", "debootstrap")
    suite, release = request.param
    cache = Path(os.environ.get("AIFACTORY_CACHE_DIR", default_cache_dir()))
    root = ensure_rootfs(tmp_path_factory.mktemp("login") / HOST, cache, suite=suite)
    with lab.proc_mounted([lab.LabNode(HOST, "slurm", root)]):
        yield root, release
    shutil.rmtree(root, ignore_errors=True)  # 700 MB, once nothing is mounted in it


def playbook(inventory: Path, facts: Path, *args: str) -> tuple[tuple[int, int], str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_NOCOLOR="1", NO_COLOR="1",
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(facts))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "slurm.yml", *args],
                          cwd=PLAYBOOKS, capture_output=True, text=True, env=env, timeout=600)
    out = proc.stdout + proc.stderr
    recap = {m[1]: (int(m[2]), int(m[3]), int(m[4]) + int(m[5])) for m in RECAP.finditer(proc.stdout)}
    assert proc.returncode == 0 and recap.get(HOST, (0, 0, 1))[2] == 0, out[-6000:]
    return recap[HOST][:2], out


def test_login_node_gets_the_client_commands_and_its_configuration(login_root, tmp_path):
    root, release = login_root
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "host_vars").mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "slurm_login": {"children": {"slurm_login_lab": None}},
        "slurm_login_lab": {"hosts": {HOST: None}}}}}))
    (inventory / "group_vars/slurm_login_lab.yml").write_text(yaml.safe_dump({
        "slurm_login_conf_servers": [CTL], "slurm_login_slurm_version": release,
        "slurm_login_conf_content": SLURM_CONF}))
    (inventory / "host_vars" / f"{HOST}.yml").write_text(yaml.safe_dump(dict(lab.CHROOT_VARS, ansible_host=str(root))))
    facts = tmp_path / "facts"

    (ok, changed), out = playbook(inventory, facts, "--check")
    assert changed > 0, out
    assert in_root(root, "dpkg-query", "-W", "slurm-client").returncode != 0, "check mode installed slurm-client"

    (ok, changed), out = playbook(inventory, facts)
    assert changed >= 3, out
    assert "PLAY [Prepare Slurm login nodes]" in out
    containers = out.split("PLAY [Run containers in Slurm jobs")[1].split("PLAY RECAP")[0]
    assert "TASK [pyxis : " in containers and not re.search(r"^(ok|changed):", containers, re.M), containers
    assert in_root(root, "dpkg-query", "-W", "munge").returncode == 0
    version = in_root(root, "dpkg-query", "-W", "-f=${Version}", "slurm-client").stdout.split("-")[0]
    assert version.startswith(release + "."), version
    assert in_root(root, "dpkg-query", "-W", "slurmd").returncode != 0  # a login node runs no slurmd
    held = set(in_root(root, "apt-mark", "showhold").stdout.split())
    assert in_root(root, "systemctl", "is-enabled", "munge").stdout.strip() == "enabled"
    assert (root / "etc/munge/munge.key").stat().st_size == 1024  # the munge role's cluster key

    if release == "22.05":  # no sackd: the rendered slurm.conf, exactly
        assert held == {"slurm-client"}, held
        assert (root / "etc/slurm/slurm.conf").read_text() == SLURM_CONF
        assert in_root(root, "dpkg-query", "-W", "sackd").returncode != 0
        sinfo = in_root(root, "sinfo", "--version").stdout
        assert sinfo == f"slurm-wlm {version}\n", sinfo  # the commands are Slurm's, at the pinned release
        # The commands read it: they know the controller (unreachable from a namespace with no network).
        ping = subprocess.run(["unshare", "--net", "chroot", str(root), "scontrol", "ping"],
                              capture_output=True, text=True, timeout=120)
        assert f"at {CTL} is DOWN" in ping.stdout, ping.stdout + ping.stderr
    else:  # sackd fetches the configuration; no local copy could hide it
        assert held == {"slurm-client", "sackd"}, held
        assert in_root(root, "dpkg-query", "-W", "-f=${Version}", "sackd").stdout.startswith(release + ".")
        options = (root / "etc/default/sackd").read_text()
        assert re.search(rf'^SACKD_OPTIONS="--conf-server {CTL}"$', options, re.M), options
        assert in_root(root, "systemctl", "is-enabled", "sackd").stdout.strip() == "enabled"
        assert not (root / "etc/slurm/slurm.conf").exists()

    (ok, changed), out = playbook(inventory, facts)
    assert changed == 0 and ok > 10, out
