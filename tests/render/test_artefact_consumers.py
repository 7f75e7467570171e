"""Every file aifactory renders reaches exactly one consumer, and that consumer really takes it.

One table maps each rendered path to its consumer:

- a role, which installs the bytes the inventory hands it: the rendered inventory must carry the
  file's exact bytes in the named variable, on a group whose hosts run that role in site.yml (or
  a playbook site.yml imports), and the role's tasks must read that variable;
- a Pulumi component, which boots instances with it: the components must call the function
  that returns the file's exact bytes;
- Ansible itself (the inventory), aifactory itself (a reviewed ``plan.json`` read back), or a
  documented program outside this repository (slurmctld, Helm, the PXE server), each with the
  test that feeds the file to that program or the document that says so;
- a reviewer (reports).

A rendered file with no entry, a file two entries claim, and an entry no rendered file uses all
fail, so a new renderer cannot add an artefact that reaches nothing.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from aifactory.inventory import group_name
from aifactory.inventory.plan import MONITORING_GROUP, PROMETHEUS_TARGETS_MAX_NODES, SLURM_CONTROLLER_FILES
from aifactory.plan.model import Plan
from aifactory.render import cloudinit
from aifactory.render.deployment import build_files
from aifactory.render.pxe import PxeSettings, pxe_files
from tests import ansible_data
from tests.render.helpers import K8S, REPO, STACKS, planned

ROLES = REPO / "playbooks" / "roles"
SITE_YML = REPO / "playbooks" / "site.yml"


@dataclass(frozen=True)
class Role:
    """Installed by ``role`` from the inventory variable ``var`` of ``group`` ("pool": the file's
    pool group; "cluster": the role's group for the file's Slurm cluster, e.g. ``slurm_controller_<cluster>``,
    where a cluster per site is named after its site;
    otherwise that group), as the whole value or, with ``key``, one item of it."""

    role: str
    var: str
    group: str = "pool"
    key: str | None = None


@dataclass(frozen=True)
class Component:
    """Read by the Pulumi components through ``function`` of ``aifactory.render.cloudinit``."""

    function: str


@dataclass(frozen=True)
class Inventory:
    """Read by Ansible: the inventory site.yml runs against."""


@dataclass(frozen=True)
class Aifactory:
    """Read back by aifactory itself (render, inventory, pxe, preflight, diff take a plan.json)."""


@dataclass(frozen=True)
class External:
    """Read by a program outside this repository; ``proof`` is a test that feeds the file to it
    (or a document that names it) and must mention ``needle``."""

    program: str
    proof: str
    needle: str


@dataclass(frozen=True)
class Review:
    """Read by people (pull request, report); ``doc`` must mention ``needle``."""

    doc: str
    needle: str


POOL = r"(?P<pool>[a-z0-9-]+)"
CLUSTER = r"(?P<cluster>[a-z0-9-]+)"
CONSUMERS = {
    # aifactory render
    rf"nccl/{POOL}/nccl\.conf": Role("nccl", "nccl_conf_content"),
    rf"nccl/{POOL}/nccl\.sh": Role("nccl", "nccl_profile_content"),
    rf"dcgm/{POOL}/dcgm-exporter\.csv": Role("dcgm", "dcgm_exporter_counters_content"),
    rf"dcgm/{POOL}/dcgm-exporter\.env": Role("dcgm", "dcgm_exporter_environment_content"),
    r"prometheus/prometheus\.yml": Role("prometheus", "prometheus_config_content", group=MONITORING_GROUP),
    rf"prometheus/targets/{POOL}\.json": Role("prometheus", "prometheus_targets_content", group=MONITORING_GROUP,
                                               key="{pool}.json"),
    rf"cloud-init/{POOL}/user-data\.yaml": Component("user_data_for"),
    r"inventory/hosts\.yml": Inventory(),
    r"inventory/group_vars/(?P<group>[a-z0-9_]+)\.yml": Inventory(),
    # slurmctld serves them to configless slurmd on the nodes; tests/render/test_slurmctld.py feeds
    # them to the real slurmctld, tests/slurm/test_control_plane.py runs a job with them.
    **{rf"slurm/{CLUSTER}/{re.escape(name)}": Role("slurm_controller", var, group="cluster")
       for name, var in SLURM_CONTROLLER_FILES.items()},
    rf"kubernetes/{POOL}/gpu-operator-values\.yaml": External(
        "helm install gpu-operator --values", "modules/aifactory/render/kubernetes.py", "GPU Operator Helm values"),
    r"plan\.json": Aifactory(),
    r"versions\.lock\.json": Review("README.md", "`versions.lock.json`"),
    r"topology/[a-z0-9-]+\.svg": Review("README.md", "an SVG of each"),
    # aifactory pxe: the provisioning host's dnsmasq (DHCP, TFTP) and HTTP server, and the
    # Ubuntu installer on each node, which fetches its autoinstall data from that server.
    r"pxe/dnsmasq\.conf": External("dnsmasq on the PXE server", "tests/render/test_pxe.py", "dnsmasq --test"),
    r"pxe/http/boot\.ipxe": External("iPXE, served by the PXE server", "modules/aifactory/render/pxe.py",
                                     "http/boot.ipxe"),
    r"pxe/http/ipxe/[0-9a-f-]+\.ipxe": External("iPXE, served by the PXE server", "modules/aifactory/render/pxe.py",
                                                "http/ipxe/<mac-with-hyphens>.ipxe"),
    r"pxe/http/autoinstall/[a-z0-9-]+/(user|meta|vendor)-data": External(
        "the Ubuntu installer (autoinstall, cloud-init)", "tests/render/test_pxe.py", "cloud-init schema"),
}

# A Kubernetes pool, which no example stack has, so that its entry is exercised too.
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3f9sBzYdQ7Rk1f2T4pP5uVYc6qk0m4d0l7q9x2Ya ops@controller"
STACK_NAMES = sorted(p.name for p in STACKS.iterdir() if (p / "factory.yaml").is_file())
CASES = STACK_NAMES + ["kubernetes-pool"]


@functools.lru_cache(maxsize=None)
def case(name: str):
    """(plan, every file aifactory writes for it: render, plus pxe for declared bare-metal hosts)."""
    plan, _ = planned(K8S if name == "kubernetes-pool" else STACKS / name / "factory.yaml")
    files = dict(build_files(plan))
    if any(pool.hosts for pool in plan.pools):
        settings = PxeSettings(server_ip="10.20.0.2", ssh_public_keys=(KEY,), gateway="10.20.0.1",
                               dns=("10.20.0.53",), domain="hall1.example.com")
        files.update({f"pxe/{rel}": text for rel, text in pxe_files(plan, settings).items()})
    return plan, files


def consumer_of(rel: str) -> tuple[str, re.Match]:
    matches = [(pattern, m) for pattern in CONSUMERS if (m := re.fullmatch(pattern, rel))]
    assert matches, f"{rel}: rendered, but no consumer is listed for it (add one to CONSUMERS)"
    assert len(matches) == 1, f"{rel}: claimed by {[p for p, _ in matches]}; one artefact, one consumer"
    return matches[0]


@functools.lru_cache(maxsize=None)
def site_plays(playbook: Path = SITE_YML) -> list[dict]:
    """The plays of ``playbook``, with those of the playbooks it imports in their place."""
    plays = []
    for play in yaml.safe_load(playbook.read_text()):
        imported = play.get("ansible.builtin.import_playbook")
        plays += site_plays(playbook.parent / imported) if imported else [play]
    return plays


# site.yml configures every node; slurm.yml adds the Slurm control plane, which needs the
# operator's secrets (`aifactory configure -p slurm.yml`).
PLAYBOOKS_RUN = (SITE_YML, SITE_YML.parent / "slurm.yml")


def groups_running(role: str) -> set[str]:
    """The host patterns of the plays of site.yml or slurm.yml that run ``role``."""
    out: set[str] = set()
    for play in [p for book in PLAYBOOKS_RUN for p in site_plays(book)]:
        if role in [r["role"] for r in play.get("roles", [])]:
            out |= set(play["hosts"].split(":"))
    assert out, f"site.yml runs no play with the {role} role"
    return out


def ancestors(hosts_yml: dict, group: str) -> set[str]:
    """``group`` and every group it belongs to through ``children``, ``all`` included."""
    children = hosts_yml["all"]["children"]
    out, todo = {group, "all"}, [group]
    while todo:
        current = todo.pop()
        for name, body in children.items():
            if current in ((body or {}).get("children") or {}) and name not in out:
                out.add(name)
                todo.append(name)
    return out


def role_reads(role: str, var: str) -> bool:
    text = "\n".join(p.read_text() for p in sorted((ROLES / role / "tasks").glob("*.yml")))
    text += "\n".join(p.read_text() for p in sorted((ROLES / role / "vars").glob("*.yml")))
    return re.search(rf"\b{re.escape(var)}\b", text) is not None


@pytest.mark.parametrize("name", CASES)
def test_every_rendered_file_has_exactly_one_consumer_that_takes_it(name):
    plan, files = case(name)
    hosts_yml = ansible_data.load_yaml(files["inventory/hosts.yml"])
    pools = {pool.name: pool for pool in plan.pools}
    for rel, text in sorted(files.items()):
        pattern, match = consumer_of(rel)
        consumer = CONSUMERS[pattern]
        if isinstance(consumer, Role):
            group = {"pool": lambda: group_name("pool", match["pool"]),
                     "cluster": lambda: group_name(consumer.role, match["cluster"])}.get(consumer.group,
                                                                                      lambda: consumer.group)()
            assert ancestors(hosts_yml, group) & groups_running(consumer.role), (
                f"{rel}: the hosts of {group} never run the {consumer.role} role in site.yml")
            assert role_reads(consumer.role, consumer.var), f"{rel}: the {consumer.role} role never reads {consumer.var}"
            group_vars = ansible_data.load_yaml(files[f"inventory/group_vars/{group}.yml"])
            value = group_vars[consumer.var]
            if consumer.key:
                key = consumer.key.format(**match.groupdict())
                if key not in value:
                    # Only a pool too large to carry in the inventory may be left out; the role
                    # then stops until the file is copied, and its README says so.
                    assert pools[match["pool"]].nodes > PROMETHEUS_TARGETS_MAX_NODES, f"{rel}: not in {consumer.var}"
                    readme = (ROLES / consumer.role / "README.md").read_text()
                    assert "copy\n`prometheus/targets/<pool>.json`" in readme and "/etc/prometheus/targets/" in readme
                    continue
                value = value[key]
            assert value == text, f"{rel}: {consumer.var} does not hold the rendered bytes"
        elif isinstance(consumer, Component):
            users = [p for p in (REPO / "modules/aifactory/components").glob("*.py")
                     if f"{consumer.function}(" in p.read_text()]
            assert users, f"{rel}: no Pulumi component calls {consumer.function}"
            assert getattr(cloudinit, consumer.function)(plan, pools[match["pool"]]) == text, rel
        elif isinstance(consumer, Inventory):
            if match.groupdict().get("group") not in (None, "all"):
                assert match["group"] in hosts_yml["all"]["children"], f"{rel}: no such group in hosts.yml"
        elif isinstance(consumer, Aifactory):
            # Warnings depend on the day (a branch past end of life); render leaves them out.
            loaded = Plan.from_dict(json.loads(text))
            assert loaded.model_dump(exclude={"warnings"}) == plan.model_dump(exclude={"warnings"}), (
                f"{rel}: aifactory does not read it back as the plan")
        elif isinstance(consumer, External):
            assert consumer.needle in (REPO / consumer.proof).read_text(), (rel, consumer.proof)
        else:
            assert consumer.needle in (REPO / consumer.doc).read_text(), (rel, consumer.doc)


def test_every_consumer_entry_is_used():
    """An entry for a file nothing renders any more is a stale claim."""
    used = {consumer_of(rel)[0] for name in CASES for rel in case(name)[1]}
    assert set(CONSUMERS) - used == set()


def test_a_new_rendered_file_without_a_consumer_fails():
    with pytest.raises(AssertionError, match="no consumer is listed"):
        consumer_of("dcgm/gpu/health.yaml")
    with pytest.raises(AssertionError, match="no consumer is listed"):
        consumer_of("prometheus/rules/gpu.yml")


def test_a_role_that_does_not_read_its_variable_is_caught():
    assert role_reads("dcgm", "dcgm_exporter_counters_content")
    assert not role_reads("dcgm", "nccl_conf_content")
    assert not role_reads("nccl", "dcgm_exporter_counters_content")


def test_the_monitoring_host_runs_prometheus_and_every_node_node_exporter():
    plan, files = case("lab")
    hosts_yml = ansible_data.load_yaml(files["inventory/hosts.yml"])
    assert hosts_yml["all"]["children"][MONITORING_GROUP] == {"hosts": {"gpu-0001": None}}
    assert groups_running("prometheus") == {MONITORING_GROUP}
    assert groups_running("node_exporter") == {"all"}


def test_no_role_templates_a_file_render_writes():
    """One author per node file: no role keeps a template of its own for a rendered artefact."""
    templates = {p.name for p in ROLES.glob("*/templates/*")}
    for name in ("counters.csv.j2", "nccl.conf.j2", "nccl.sh.j2", "prometheus.yml.j2", "targets.json.j2",
                 "dcgm-exporter.env.j2", "dcgm-exporter.csv.j2"):
        assert name not in templates, name
