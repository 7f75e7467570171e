"""The rdma role's EFA tasks against a stand-in installer: first install, a re-run that changes
nothing, then an upgrade that really runs the new version's installer.

The stand-in behaves like aws-efa-installer-<version>.tar.gz: it unpacks to aws-efa-installer/
and its efa_installer.sh records "# EFA installer version: <version>" in efa_installed_packages,
the file the real installer writes under /opt/amazon. Every path is redirected into tmp_path.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile

import pytest
import yaml

from tests.conftest import need_root
from tests.playbooks.test_roles import BIN, ENV, PLAYBOOKS

# ansible-playbook runs the role: a real external program (the fast target leaves it out).
pytestmark = pytest.mark.slow

ROLE = PLAYBOOKS / "roles" / "rdma"


def _installer(tmp_path, version: str, extra: str) -> None:
    """aws-efa-installer-<version>.tar.gz under tmp_path/mirror, with one file only it has."""
    src = tmp_path / "src" / version / "aws-efa-installer"
    src.mkdir(parents=True)
    script = src / "efa_installer.sh"
    script.write_text(
        "#!/bin/sh\nset -e\n[ \"$1\" = --yes ]\n"
        f"printf '# EFA installer version: {version}\\n# Debug packages installed: no\\n' > {tmp_path}/record\n"
        f"echo {version} >> {tmp_path}/runs\n")
    script.chmod(0o755)
    (src / extra).write_text(version)
    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    with tarfile.open(mirror / f"aws-efa-installer-{version}.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="aws-efa-installer")


def _run(tmp_path, version: str) -> int:
    """Run the role's EFA tasks for ``version``; the number of changed tasks."""
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/main.yml")],
        # The role's handler runs ldconfig for the whole host; here it only has to exist.
        "handlers": [{"name": "Refresh the linker cache for EFA", "ansible.builtin.debug": {"msg": "ldconfig"}}],
        "tasks": [{"name": "Run the EFA tasks", "ansible.builtin.include_tasks": str(ROLE / "tasks/efa.yml")}],
    }]))
    (tmp_path / "opt").mkdir(exist_ok=True)
    if not (tmp_path / "templates").exists():  # the role's templates, found next to the play
        (tmp_path / "templates").symlink_to(ROLE / "templates")
    extra = {"ansible_python_interpreter": sys.executable, "rdma_efa_version": version,
             "rdma_efa_base_url": str(tmp_path / "mirror"), "_rdma_efa_unpack_dir": str(tmp_path / "opt"),
             "_rdma_efa_record": str(tmp_path / "record"), "_rdma_efa_linker_conf": str(tmp_path / "aws-efa.conf")}
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play), "-e", json.dumps(extra)],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout).group(1))


def test_efa_installer_installs_upgrades_and_stays_idempotent(tmp_path):
    need_root()  # the role unpacks as root:root
    tasks = (ROLE / "tasks/efa.yml").read_text()
    # The paths must be redirectable before anything runs, or the test would touch /opt.
    assert "_rdma_efa_unpack_dir" in tasks and "_rdma_efa_record" in tasks
    _installer(tmp_path, "1.42.0", "only-in-1.42.0")
    _installer(tmp_path, "1.43.2", "only-in-1.43.2")
    runs = tmp_path / "runs"

    assert _run(tmp_path, "1.42.0") > 0
    assert "EFA installer version: 1.42.0" in (tmp_path / "record").read_text()
    assert runs.read_text().split() == ["1.42.0"]

    assert _run(tmp_path, "1.42.0") == 0  # the node already has it: nothing runs
    assert runs.read_text().split() == ["1.42.0"]

    assert _run(tmp_path, "1.43.2") > 0  # an upgrade runs the new version's installer
    assert "EFA installer version: 1.43.2" in (tmp_path / "record").read_text()
    assert runs.read_text().split() == ["1.42.0", "1.43.2"]
    unpacked = tmp_path / "opt" / "aws-efa-installer"
    assert (unpacked / "only-in-1.43.2").exists() and not (unpacked / "only-in-1.42.0").exists()

    assert _run(tmp_path, "1.43.2") == 0
    assert "/opt/amazon/ofi-nccl/lib" in (tmp_path / "aws-efa.conf").read_text()


def test_installed_version_is_read_from_the_installers_record():
    text = (ROLE / "vars/main.yml").read_text()
    assert "EFA installer version:" in text
    assert "creates:" not in (ROLE / "tasks/efa.yml").read_text()
