"""GPUDirect over DMA-BUF needs Linux 5.12 or later: the rdma role's own assert task, run by
ansible-playbook with the node's kernel fact given, passes on a supported kernel and fails with
the fix on an older one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.playbooks.test_roles import BIN, ENV, PLAYBOOKS

pytestmark = pytest.mark.slow

TASKS = yaml.safe_load((PLAYBOOKS / "roles/rdma/tasks/main.yml").read_text())
ASSERT = next(t for t in TASKS if t["name"].startswith("Fail on DMA-BUF"))


def _run(tmp_path, kernel: str, gpudirect: str) -> subprocess.CompletedProcess:
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "node", "gather_facts": False, "tasks": [ASSERT]}]))
    # The node's facts as gathering would report them (only the kernel is read).
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "node,", "-c", "local", str(play),
                           "-e", json.dumps({"ansible_facts": {"kernel": kernel}, "_rdma_verbs": True,
                                             "rdma_gpudirect": gpudirect,
                                             "ansible_python_interpreter": sys.executable})],
                          capture_output=True, text=True, env=ENV)


@pytest.mark.parametrize("kernel, gpudirect, ok", [
    ("6.8.0-45-generic", "dmabuf", True),    # Ubuntu 24.04
    ("5.14.0-427.13.1.el9_4.x86_64", "dmabuf", True),  # RHEL 9
    ("5.4.0-200-generic", "dmabuf", False),  # Ubuntu 20.04's kernel: no DMA-BUF for RDMA
    ("5.4.0-200-generic", "peermem", True),
])
def test_dmabuf_needs_linux_5_12(tmp_path, kernel, gpudirect, ok):
    proc = _run(tmp_path, kernel, gpudirect)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    if not ok:
        assert "set rdma_gpudirect: peermem" in proc.stdout, proc.stdout
