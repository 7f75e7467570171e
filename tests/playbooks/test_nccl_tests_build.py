"""The nccl role builds nccl-tests with MPI for the multi-node health check, and rebuilds from
clean when NCCL or the MPI choice changes. Its own tasks (tasks/tests.yml) run through
ansible-playbook against a source tree whose Makefile records how make was called."""

from __future__ import annotations

import json
import subprocess
import tarfile

import pytest
import yaml

from tests.playbooks.test_roles import BIN, ENV, PLAYBOOKS

pytestmark = pytest.mark.slow

MAKEFILE = """\
all:
\techo "build MPI=$(MPI) MPI_HOME=$(MPI_HOME) CUDA_HOME=$(CUDA_HOME)" >> $(CURDIR)/calls.log
\tmkdir -p build
clean:
\techo clean >> $(CURDIR)/calls.log
\trm -rf build
"""


def _source(tmp_path):
    src = tmp_path / "nccl-tests-2.17.6"
    src.mkdir()
    (src / "Makefile").write_text(MAKEFILE)
    tarball = tmp_path / "nccl-tests.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    return tarball


def _run(tmp_path, tarball, dest, **extra):
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": True,
        "tasks": [{"name": "Build nccl-tests", "ansible.builtin.include_role": {"name": "nccl", "tasks_from": "tests"}}],
    }]))
    values = {"nccl_tests_url": str(tarball), "nccl_tests_dir": str(dest), "nccl_version": "2.28.9-1+cuda13.0",
              # What the OS vars file gives; `make` is installed here, so the package task has nothing to do.
              "_nccl_build_packages": ["make"], "_nccl_mpi_packages": [], "_nccl_mpi_home": "/usr/lib/x86_64-linux-gnu/openmpi",
              "ansible_python_interpreter": "/usr/bin/python3", **extra}
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play), "-e", json.dumps(values)],
                          capture_output=True, text=True,
                          # A fact cache of its own: another test may have cached only a subset for localhost.
                          env=dict(ENV, ANSIBLE_ROLES_PATH=str(PLAYBOOKS / "roles"),
                                   ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "facts")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return (dest / "calls.log").read_text().splitlines()


def test_built_with_mpi_then_rebuilt_from_clean_on_change(tmp_path):
    tarball, dest = _source(tmp_path), tmp_path / "opt-nccl-tests"
    calls = _run(tmp_path, tarball, dest)
    assert calls == ["clean", "build MPI=1 MPI_HOME=/usr/lib/x86_64-linux-gnu/openmpi CUDA_HOME=/usr/local/cuda"]
    assert _run(tmp_path, tarball, dest) == calls  # nothing changed: no make at all
    calls = _run(tmp_path, tarball, dest, nccl_version="2.29.1-1+cuda13.0")
    assert calls[2:] == ["clean", "build MPI=1 MPI_HOME=/usr/lib/x86_64-linux-gnu/openmpi CUDA_HOME=/usr/local/cuda"]
    calls = _run(tmp_path, tarball, dest, nccl_version="2.29.1-1+cuda13.0", nccl_tests_mpi=False)
    assert calls[4:] == ["clean", "build MPI= MPI_HOME= CUDA_HOME=/usr/local/cuda"]
