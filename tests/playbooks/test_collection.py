"""playbooks/ is the Ansible collection aifactory.factory: it builds, installs, and another
project uses its roles and playbooks by their full names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((PLAYBOOKS / "galaxy.yml").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
BOOKS = ["site", "slurm", "health", "upgrade"]
GROUPS = ["nvidia", "mig", "nvswitch", "imex", "rdma", "efa", "gpudirect_tcpx", "gpudirect_tcpxo", "slurm",
          "monitoring", "slurm_controller", "slurm_accounting", "slurm_login"]

# Everything the built collection may hold at its top level.
TOP_LEVEL = {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.md", "LICENSE", "ansible.cfg", "meta",
             "playbooks", "plugins", "roles", *(f"{book}.yml" for book in BOOKS)}
ROLE_FOLDERS = {"README.md", "defaults", "files", "filter_plugins", "handlers", "meta", "tasks", "templates", "vars"}
CACHES = re.compile(r"(^|/)(__pycache__|\.pytest_cache|\.hypothesis|\.cache|\.ansible|\.venv|\.git)(/|$)|\.pyc$")
SECRETS = re.compile(r"(^|/)(\.env|id_rsa[^/]*|id_ed25519[^/]*|[^/]*\.pem|[^/]*\.key|secrets?\.ya?ml|"
                     r"vault[^/]*\.ya?ml|\.vault_pass[^/]*)$", re.I)


def _floor(requirement: str) -> str:
    """'ansible-core>=2.16' -> '2.16'"""
    return re.fullmatch(r"[A-Za-z0-9_.-]+\s*>=\s*([0-9.]+).*", requirement).group(1)


def test_collection_name_is_one_galaxy_accepts():
    for part in (GALAXY["namespace"], GALAXY["name"]):
        assert re.fullmatch(r"[a-z][a-z0-9_]*", part) and "__" not in part, part
    assert GALAXY["license"] == ["Apache-2.0"] and "license_file" not in GALAXY


def test_collection_version_is_the_python_package_version():
    assert GALAXY["version"] == PYPROJECT["project"]["version"]


def test_requires_ansible_is_the_ansible_core_floor():
    [core] = [d for d in PYPROJECT["project"]["dependencies"] if re.match(r"ansible-core\s*>=", d)]
    runtime = yaml.safe_load((PLAYBOOKS / "meta/runtime.yml").read_text())
    floor = _floor(core)
    assert runtime["requires_ansible"] == f">={floor}" + ".0" * (3 - len(floor.split(".")))


def test_every_collection_the_roles_use_is_a_dependency():
    used = set()
    for file in (PLAYBOOKS / "roles").rglob("*.yml"):
        used |= set(re.findall(r"^\s*-?\s*([a-z_]+\.[a-z_]+)\.[a-z_]+:\s*$", file.read_text(), re.M))
    used -= {"ansible.builtin", FQCN}
    assert used and used <= set(GALAXY["dependencies"]), used - set(GALAXY["dependencies"])
    for requirement in GALAXY["dependencies"].values():
        assert requirement.startswith(">="), requirement


def test_repository_playbooks_are_the_collection_playbooks():
    """playbooks/playbooks/<book>.yml only imports the top-level <book>.yml: one copy of each play."""
    assert sorted(p.stem for p in (PLAYBOOKS / "playbooks").glob("*.yml")) == sorted(BOOKS)
    for book in BOOKS:
        [play] = yaml.safe_load((PLAYBOOKS / "playbooks" / f"{book}.yml").read_text())
        assert play["ansible.builtin.import_playbook"] == f"../{book}.yml"


def _run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return proc


def _build(source: Path, out: Path) -> Path:
    _run("ansible-galaxy", "collection", "build", str(source), "--output-path", str(out), cwd=out.parent)
    [tarball] = out.glob(f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz")
    return tarball


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    return _build(PLAYBOOKS, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory) -> dict:
    """The environment of a project elsewhere with the collection installed and no roles path."""
    root = tmp_path_factory.mktemp("collections")
    _run("ansible-galaxy", "collection", "install", "--offline", "--no-deps", "-p", str(root), str(tarball),
         cwd=root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    # community.general and community.mysql come from the `ansible` package next to ansible-core.
    # No ansible.cfg of the repository's and no roles path: only the installed collection.
    (root / "ansible.cfg").write_text("[defaults]\n")
    env.update(ANSIBLE_COLLECTIONS_PATH=str(root), ANSIBLE_ROLES_PATH=str(root / "no-roles"),
               ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_NOCOLOR="1", NO_COLOR="1")
    return env


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"children": {g: {"hosts": {"n1": None}} for g in GROUPS}}}))
    return tmp_path


@pytest.mark.slow
def test_tarball_holds_only_the_collection(tarball):
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        members = {m.name: m for m in tar.getmembers()}
    assert {n.split("/")[0] for n in names} <= TOP_LEVEL, {n.split("/")[0] for n in names} - TOP_LEVEL
    roles = {n.split("/")[1] for n in names if n.startswith("roles/") and n.count("/") >= 1}
    assert roles == {p.name for p in (PLAYBOOKS / "roles").iterdir() if p.is_dir()}
    for name in names:
        parts = name.split("/")
        if parts[0] == "roles" and len(parts) > 2:
            assert parts[2] in ROLE_FOLDERS, name
        assert not CACHES.search(name), name
        assert not SECRETS.search(name), name
    # LICENSE and CHANGELOG.md are the repository's files themselves, not links out of the collection.
    for name in ("LICENSE", "CHANGELOG.md"):
        assert members[name].isfile() and members[name].size == (REPO / name).stat().st_size, name
    assert {f"playbooks/{book}.yml" for book in BOOKS} | {"meta/runtime.yml", "README.md"} <= set(names)


@pytest.mark.slow
def test_build_leaves_out_caches_planted_in_the_source(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for linked in ("LICENSE", "CHANGELOG.md"):  # what playbooks/ links to
        shutil.copy(REPO / linked, source / linked)
    shutil.copytree(PLAYBOOKS, source / "playbooks", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", ".ansible"))
    role = source / "playbooks/roles/slurm_accounting"
    for planted in ("__pycache__/sacctmgr.cpython-311.pyc", ".pytest_cache/v/cache/nodeids", ".ansible/x",
                    "filter_plugins/__pycache__/sacctmgr.cpython-311.pyc", ".hypothesis/examples/x"):
        (role / planted).parent.mkdir(parents=True, exist_ok=True)
        (role / planted).write_text("x")
    for planted in (".pytest_cache/README.md", ".ansible/collections/x", ".cache/x", "site.retry"):
        (source / "playbooks" / planted).parent.mkdir(parents=True, exist_ok=True)
        (source / "playbooks" / planted).write_text("x")
    out = tmp_path / "dist"
    out.mkdir()
    with tarfile.open(_build(source / "playbooks", out)) as tar:
        names = tar.getnames()
    assert not [n for n in names if CACHES.search(n) or n.endswith(".retry")], names
    assert "roles/slurm_accounting/filter_plugins/sacctmgr.py" in names


@pytest.mark.slow
@pytest.mark.parametrize("book", BOOKS)
def test_collection_playbooks_run_by_their_full_names(book, installed, project):
    proc = _run("ansible-playbook", f"{FQCN}.{book}", "-i", "hosts.yml", "--syntax-check", cwd=project,
                env=installed)
    assert f"ansible_collections/{GALAXY['namespace']}/{GALAXY['name']}/playbooks/{book}.yml" in proc.stdout
    # The imported plays' roles are the collection's.
    tasks = _run("ansible-playbook", f"{FQCN}.{book}", "-i", "hosts.yml", "--list-tasks", cwd=project,
                 env=installed).stdout
    assert re.search(rf"^\s+{re.escape(FQCN)}\.\w+ : ", tasks, re.M), tasks[-3000:]


@pytest.mark.slow
def test_roles_by_their_full_names_in_another_project(installed, project):
    (project / "play.yml").write_text(yaml.safe_dump([
        {"name": "Prepare Slurm compute nodes", "hosts": "slurm", "become": True,
         "roles": [{"role": f"{FQCN}.munge"}, {"role": f"{FQCN}.slurm_client"}]},
        {"name": "Install the NVIDIA stack", "hosts": "nvidia", "become": True,
         "roles": [{"role": f"{FQCN}.{r}"} for r in ("nvidia_driver", "cuda_toolkit", "dcgm", "nccl")]},
    ], sort_keys=False))
    _run("ansible-playbook", "play.yml", "-i", "hosts.yml", "--syntax-check", cwd=project, env=installed)
    listed = _run("ansible-galaxy", "collection", "list", FQCN, cwd=project, env=installed).stdout
    assert re.search(rf"^{re.escape(FQCN)}\s+{re.escape(GALAXY['version'])}\s*$", listed, re.M), listed
    doc = _run("ansible-doc", "-t", "role", f"{FQCN}.munge", cwd=project, env=installed).stdout
    assert f"{FQCN}.munge" in doc and "munge_key" in doc


def _localhost_play(project: Path, env: dict, tasks: list | None = None, roles: list | None = None,
                    gather: bool = False, *extra: str) -> subprocess.CompletedProcess:
    play = {"name": "Run on this machine", "hosts": "localhost", "connection": "local", "gather_facts": gather}
    play.update({"tasks": tasks} if tasks else {"roles": roles})
    (project / "local.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    return subprocess.run([str(BIN / "ansible-playbook"), "local.yml", "-i", "localhost,",
                           "-e", f"ansible_python_interpreter={sys.executable}", *extra],
                          cwd=project, capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_role_filters_load_from_the_installed_collection(installed, project):
    """slurm_accounting's sacctmgr filters run when the role is aifactory.factory.slurm_accounting."""
    include = {"ansible.builtin.include_role": {"name": f"{FQCN}.slurm_accounting", "tasks_from": "qos.yml"}}
    good = _localhost_play(project, installed, tasks=[dict(include, vars={
        "slurm_accounting_qos": [{"name": "normal", "priority": 10}]})])
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-3000:]
    bad = _localhost_play(project, installed, tasks=[dict(include, vars={
        "slurm_accounting_qos": [{"name": "bad,name", "priority": 1}]})])
    assert bad.returncode != 0
    assert f"'{FQCN}.slurm_accounting_qos_commands' failed" in bad.stdout and "bad,name" in bad.stdout, bad.stdout


@pytest.mark.slow
def test_a_collection_role_finds_its_siblings_by_short_name(installed, project):
    """nccl includes `nvidia_repository`: installed, that is the collection's role. The run stops
    at nvidia_repository's first check (no repository key is known), so nothing is installed."""
    proc = _localhost_play(project, installed, None, [{"role": f"{FQCN}.nccl", "vars": {"nccl_install": True}}],
                           True, "--check", "-e", '{"_nvidia_repository_keys": {}}')
    assert proc.returncode != 0
    assert f"TASK [{FQCN}.nvidia_repository : Fail on an operating system" in proc.stdout, proc.stdout[-3000:]
