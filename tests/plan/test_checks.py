"""Every named check: a spec that passes it and one that fails it, with the located finding."""

from __future__ import annotations

import copy
import re
import datetime as dt

import pytest
import yaml

from aifactory.catalog import load as load_catalog
from aifactory.plan import checks, validate
from aifactory.spec import load_string

TODAY = dt.date(2026, 1, 15)  # fixed, so end-of-life warnings do not depend on the run date
# The release the catalog pins for R580 (the base spec's branch); messages below quote it.
R580 = load_catalog().branches["580"].latest
# A branch announced without a release, as a spec's catalog overlay can add one.
UNRELEASED = {"branch": "625", "kind": "NFB", "status": "supported", "eol": None, "latest": None,
              "default_cuda": None, "source": "announced, no release"}


def base() -> dict:
    return {
        "name": "t",
        "software": {"driver_branch": "580", "cuda": "13.0"},
        "sites": [{"name": "dc1", "power_mw": 5, "pue": 1.2, "rack_kw": 45},
                  {"name": "aws1", "provider": "aws", "region": "us-east-1"}],
        "fabrics": [{"name": "ib", "type": "infiniband", "switch": "qm9700"}, {"name": "efa", "type": "efa"}],
        "pools": [
            {"name": "dgx", "site": "dc1", "provider": "onprem", "system": "dgx-h100", "nodes": 16, "fabric": "ib"},
            {"name": "p5", "site": "aws1", "provider": "aws", "system": "p5.48xlarge", "nodes": 4, "fabric": "efa",
             "zones": ["us-east-1a"]},
        ],
    }


def run(spec: dict, check: str):
    """Findings of one named check (the refs phase must pass for later phases to run)."""
    text = yaml.safe_dump(spec, sort_keys=False)
    loaded = load_string(text, "f.yaml")
    result = validate(loaded, today=TODAY)
    assert check in checks.CHECKS
    return [f for f in result.findings if f.check == check], text


def errors(spec, check):
    found, text = run(spec, check)
    return [f for f in found if f.severity == "error"], text


def warnings(spec, check):
    found, _ = run(spec, check)
    return [f for f in found if f.severity == "warning"]


def load_errors(spec: dict):
    from aifactory.errors import SpecError

    try:
        load_string(yaml.safe_dump(spec), "f.yaml")
    except SpecError as exc:
        return exc.findings
    return []


def result_lines(text: str) -> dict:
    return load_string(text, "f.yaml").doc.lines


def test_base_spec_is_clean_for_every_check():
    result = validate(load_string(yaml.safe_dump(base()), "f.yaml"), today=TODAY)
    assert result.findings == []
    assert result.plan.totals["gpus"] == 16 * 8 + 4 * 8


def mutate(fn):
    spec = copy.deepcopy(base())
    fn(spec)
    return spec


# A system the packaged catalog lacks, as a spec's catalog overlay adds it.
SYSTEM_ROW = {"id": "my-hgx", "name": "Custom HGX H100", "gpu": "h100-sxm", "gpus_per_node": 8,
              "nvlink_domain_gpus": 8, "node_kw": 10.2, "rack_units": 8, "nodes_per_rack": None, "nvswitch": True,
              "fabric_manager": True, "nvlsm": False, "imex": False, "cpu_arch": "x86_64", "compute_nics": 8,
              "nic_gbps": 400, "source": "vendor quote, 2026-11"}
HW_ROW = {"system": "my-hgx", "sockets": 2, "cores_per_socket": 48, "threads_per_core": 2, "memory_gib": 2048,
          "source": "vendor quote, 2026-11"}

def slurm(*clusters: dict):
    """A mutation that gives the base spec these ``slurm.clusters`` entries."""
    return lambda s: s.update(slurm={"clusters": list(clusters)})


def with_k8s(spec: dict) -> None:
    """A Kubernetes pool beside the Slurm pool at dc1."""
    spec["pools"].append({"name": "k8s", "site": "dc1", "provider": "onprem", "system": "dgx-h100", "nodes": 2,
                          "fabric": "ib", "scheduler": "kubernetes"})


def with_oci(spec: dict) -> None:
    """An OCI bare-metal H100 pool beside the base spec's pools."""
    spec["sites"].append({"name": "oci1", "provider": "oci", "region": "us-ashburn-1"})
    spec["pools"].append({"name": "bm", "site": "oci1", "provider": "oci", "system": "BM.GPU.H100.8", "nodes": 2})


def with_azure(spec: dict) -> None:
    """An Azure ND H100 v5 pool beside the base spec's pools."""
    spec["sites"].append({"name": "az1", "provider": "azure", "region": "eastus"})
    spec["pools"].append({"name": "nd", "site": "az1", "provider": "azure", "system": "Standard_ND96isr_H100_v5",
                          "nodes": 2})


DGX_HOSTS = [{"name": "n1", "mac": "aa:bb:cc:dd:ee:01", "bmc": "10.0.0.1", "ip": "10.1.0.1"},
             {"name": "n2", "mac": "aa:bb:cc:dd:ee:02", "bmc": "10.0.0.2", "ip": "10.1.0.2"}]

CASES = [
    # (check, mutation, expected path, words in the message)
    ("slurm-clusters", slurm({"site": "dc2"}), ("slurm", "clusters", 0, "site"), "unknown site 'dc2'"),
    ("slurm-clusters", slurm({"site": "dc1"}, {"site": "dc1"}), ("slurm", "clusters", 1, "site"), "listed twice"),
    ("slurm-clusters", lambda s: (s["pools"][1].update(scheduler="kubernetes"), slurm({"site": "aws1"})(s)),
     ("slurm", "clusters", 0, "site"), "site aws1 has no Slurm pool"),
    ("slurm-controller", slurm({"site": "dc1", "controller": {"pool": "dgxx"}}),
     ("slurm", "clusters", 0, "controller", "pool"), "unknown pool 'dgxx'"),
    ("slurm-controller", slurm({"site": "dc1", "controller": {"pool": "p5"}}),
     ("slurm", "clusters", 0, "controller", "pool"), "pool p5 is at site aws1, not dc1"),
    ("slurm-controller", lambda s: (with_k8s(s), slurm({"site": "dc1", "controller": {"pool": "k8s"}})(s)),
     ("slurm", "clusters", 0, "controller", "pool"), "pool k8s is scheduled by kubernetes, not Slurm"),
    ("slurm-controller", slurm({"site": "dc1", "controller": {"pool": "dgx", "host": "n1"}}),
     ("slurm", "clusters", 0, "controller"), "not both"),
    ("slurm-controller", slurm({"site": "dc1", "backup": {}}), ("slurm", "clusters", 0, "backup"),
     "give pool: (the pool's first node) or host:"),
    # A cloud pool's nodes are named when planned: its first node is `{pool: p5}`, not a host.
    ("slurm-controller", slurm({"site": "aws1", "controller": {"host": "p5-0001"}}),
     ("slurm", "clusters", 0, "controller", "host"), "no declared host 'p5-0001'"),
    ("slurm-controller", lambda s: (s["pools"][0].update(hosts=DGX_HOSTS),
                                    slurm({"site": "dc1", "controller": {"host": "n1"}, "backup": {"host": "n3"}})(s)),
     ("slurm", "clusters", 0, "backup", "host"), "no declared host 'n3'"),
    ("slurm-controller", slurm({"site": "aws1", "backup": {"pool": "p5"}}), ("slurm", "clusters", 0, "backup"),
     "the backup is the primary controller (the first node of pool p5)"),
    ("slurm-controller", lambda s: (s["pools"][0].update(hosts=DGX_HOSTS),
                                    slurm({"site": "dc1", "controller": {"pool": "dgx"}, "backup": {"host": "n1"}})(s)),
     ("slurm", "clusters", 0, "backup"), "the backup is the primary controller (n1)"),
    ("slurm-accounting", slurm({"site": "dc1", "accounting": {"database": "external"}}),
     ("slurm", "clusters", 0, "accounting"), "external accounting needs the slurmdbd's host"),
    ("slurm-accounting", slurm({"site": "dc1", "accounting": {"database": "local", "port": 7000}}),
     ("slurm", "clusters", 0, "accounting", "port"), "local accounting runs slurmdbd on the primary controller"),
    ("slurm-accounting", slurm({"site": "dc1", "accounting": {"database": "external", "host": "localhost"}}),
     ("slurm", "clusters", 0, "accounting", "host"), "localhost is the controller itself"),
    ("slurm-accounting", slurm({"site": "dc1", "accounting": {"database": "external", "host": "127.0.0.53"}}),
     ("slurm", "clusters", 0, "accounting", "host"), "127.0.0.53 is the controller itself"),
    ("slurm-accounting", slurm({"site": "dc1", "accounting": {"database": "external", "host": "300.1.1.1"}}),
     ("slurm", "clusters", 0, "accounting", "host"), "neither a host name"),
    ("slurm-partition", slurm({"site": "dc1", "default_partition": "dgxx"}),
     ("slurm", "clusters", 0, "default_partition"), "unknown pool 'dgxx'"),
    ("slurm-partition", slurm({"site": "dc1", "default_partition": "p5"}),
     ("slurm", "clusters", 0, "default_partition"), "pool p5 is at site aws1, not dc1"),
    ("slurm-partition", lambda s: (with_k8s(s), slurm({"site": "dc1", "default_partition": "k8s"})(s)),
     ("slurm", "clusters", 0, "default_partition"), "has no Slurm partition"),
    ("slurm-clusters", slurm({"site": "dc1", "sites": ["dc1"]}), ("slurm", "clusters", 0, "site"), "not both"),
    ("slurm-clusters", slurm({"name": "x", "controller": {"pool": "dgx"}}), ("slurm", "clusters", 0),
     "needs its site: or sites:"),
    ("slurm-clusters", slurm({"name": "all", "sites": ["dc1", "aws2"]}), ("slurm", "clusters", 0, "sites", 1),
     "unknown site 'aws2'"),
    ("slurm-clusters", slurm({"name": "all", "sites": ["dc1", "aws1"]}, {"site": "aws1"}),
     ("slurm", "clusters", 1, "site"), "site aws1 is listed twice (also slurm.clusters[0])"),
    ("slurm-clusters", slurm({"name": "all", "sites": ["dc1", "dc1"]}), ("slurm", "clusters", 0, "sites", 1),
     "listed twice in this cluster"),
    ("slurm-naming", slurm({"sites": ["dc1", "aws1"]}), ("slurm", "clusters", 0), "needs a name"),
    ("slurm-naming", slurm({"name": "aws1", "site": "dc1"}), ("slurm", "clusters", 0, "name"),
     "cluster name 'aws1' is taken (also the cluster layout: per-site makes for site(s) aws1)"),
    ("slurm-naming", slurm({"name": "x", "site": "dc1"}, {"name": "x", "site": "aws1"}),
     ("slurm", "clusters", 1, "name"), "cluster name 'x' is taken (also slurm.clusters[0])"),
    ("slurm-controller", slurm({"name": "all", "sites": ["dc1", "aws1"], "controller": {"pool": "dgxx"}}),
     ("slurm", "clusters", 0, "controller", "pool"), "unknown pool 'dgxx'"),
    ("slurm-controller", lambda s: (with_oci(s), slurm({"name": "all", "sites": ["dc1", "aws1"],
                                                         "controller": {"pool": "bm"}})(s)),
     ("slurm", "clusters", 0, "controller", "pool"), "pool bm is at site oci1, not one of dc1, aws1"),
    ("slurm-login", slurm({"site": "dc1", "login": [{"pool": "p5"}]}), ("slurm", "clusters", 0, "login", 0, "pool"),
     "pool p5 is at site aws1, not dc1"),
    ("slurm-login", slurm({"site": "dc1", "login": [{"host": "dgx-0001"}]}),
     ("slurm", "clusters", 0, "login", 0, "host"), "no declared host 'dgx-0001'"),
    ("slurm-login", lambda s: (with_k8s(s), slurm({"site": "dc1", "login": [{"pool": "k8s"}]})(s)),
     ("slurm", "clusters", 0, "login", 0, "pool"), "pool k8s is scheduled by kubernetes, not Slurm"),
    ("slurm-login", slurm({"site": "dc1", "login": [{"pool": "dgx"}, {"pool": "dgx"}]}),
     ("slurm", "clusters", 0, "login", 1), "login[1] is the same node as login[0]"),
    ("slurm-login", slurm({"site": "dc1", "login": [{"pool": "dgx", "host": "n1"}]}),
     ("slurm", "clusters", 0, "login", 0), "not both"),
    ("slurm-partition", slurm({"name": "all", "sites": ["dc1"], "default_partition": "p5"}),
     ("slurm", "clusters", 0, "default_partition"), "pool p5 is at site aws1, not dc1: it is in another Slurm cluster"),
    ("slurm-qos", slurm({"site": "dc1", "qos": [{"name": "high"}, {"name": "high", "priority": 5}]}),
     ("slurm", "clusters", 0, "qos", 1, "name"), "QoS high is listed twice (also qos[0])"),
    ("slurm-qos", lambda s: s.update(slurm={"layout": "federation", "clusters": [
        {"site": "dc1", "qos": [{"name": "high", "max_wall": "12h"}]},
        {"site": "aws1", "qos": [{"name": "high", "max_wall": "24h"}]}]}),
     ("slurm", "clusters", 1, "qos", 0, "name"), "QoS high differs from slurm.clusters[0].qos[0]"),
    ("slurm-fairshare", slurm({"site": "dc1", "fairshare": {"weights": {"fairshare": 4_000_000_000,
                                                                      "age": 400_000_000}}}),
     ("slurm", "clusters", 0, "fairshare", "weights"), "more than a job priority holds"),
    ("slurm-federation", lambda s: s.update(slurm={"federation": "fed"}), ("slurm", "federation"),
     "a federation name needs layout: federation"),
    ("slurm-federation", lambda s: s.update(slurm={"layout": "federation", "clusters": [
        {"site": "aws1", "accounting": {"database": "local"}}]}),
     ("slurm", "clusters", 0, "accounting"), "share one slurmdbd: the first cluster's (dc1)"),
    ("unique-names", lambda s: s["pools"][1].update(name="dgx"), ("pools", 1, "name"), "duplicate name"),
    ("unique-names", lambda s: s["pools"][0].update(hosts=[
        {"name": "n1", "mac": "aa:bb:cc:dd:ee:01", "bmc": "10.0.0.1"},
        {"name": "n2", "mac": "aa:bb:cc:dd:ee:01", "bmc": "10.0.0.2"}]), ("pools", 0, "hosts", 1, "mac"), "duplicate host mac"),
    ("unique-names", lambda s: s["pools"][0].update(hosts=[
        {"name": "n1", "mac": "aa:bb:cc:dd:ee:01", "bmc": "10.0.0.1", "ip": "10.1.0.1"},
        {"name": "n2", "mac": "aa:bb:cc:dd:ee:02", "bmc": "10.0.0.2", "ip": "10.1.0.1"}]),
     ("pools", 0, "hosts", 1, "ip"), "duplicate host ip"),
    ("slurm-names", lambda s: s["pools"][0].update(name="default"), ("pools", 0, "name"), "reserved by Slurm"),
    ("provider-zones", lambda s: s["pools"][1].pop("zones"), ("pools", 1, "zones"), "aws pools need a zone"),
    ("provider-images", lambda s: s["software"].update(os="rhel-9"), ("software", "os"),
     "aws has no rhel-9 image for x86_64"),
    ("provider-images", lambda s: (s["sites"].append({"name": "oci1", "provider": "oci", "region": "us-ashburn-1"}),
                                   s["pools"].append({"name": "vm", "site": "oci1", "provider": "oci",
                                                      "system": "VM.GPU.A10.1", "nodes": 1})),
     ("pools", 2, "system"), "bare-metal BM.GPU shapes only"),
    ("provider-images", lambda s: (s["software"].update(os="debian-13"), with_oci(s)), ("software", "os"),
     "oci has no debian-13 image for x86_64 nodes (pool bm, BM.GPU.H100.8)"),
    ("provider-images", lambda s: (s["software"].update(os="debian-13"), with_azure(s)), ("software", "os"),
     "azure has no debian-13 image for x86_64 nodes (pool nd, Standard_ND96isr_H100_v5)"),
    ("references", lambda s: s["pools"][0].update(site="dc2"), ("pools", 0, "site"), "unknown site 'dc2'"),
    ("references", lambda s: s["pools"][0].update(fabric="ibb"), ("pools", 0, "fabric"), "unknown fabric"),
    ("catalog-ids", lambda s: s["pools"][0].update(system="dgx-h10"), ("pools", 0, "system"), "unknown system"),
    ("catalog-ids", lambda s: s["fabrics"][0].update(switch="qm970"), ("fabrics", 0, "switch"), "unknown switch"),
    ("mig-profiles", lambda s: s["pools"][0].update(mig={"3g.40gb": 3}), ("pools", 0, "mig", "3g.40gb"),
     "at most 2 3g.40gb instances"),
    ("mig-profiles", lambda s: s["pools"][0].update(mig={"4g.40gb": 1, "3g.40gb": 1, "1g.10gb": 1}), ("pools", 0, "mig"),
     "takes 8 compute slices"),
    ("provider-system", lambda s: s["pools"][1].update(provider="gcp"), ("pools", 1, "system"), "aws system"),
    ("provider-system", lambda s: (s["sites"][1].pop("region")), ("pools", 1, "region"), "needs a region"),
    ("fabric-compat", lambda s: s["fabrics"][1].update(type="infiniband"), ("pools", 1, "fabric"),
     "cannot use an InfiniBand fabric"),
    ("fabric-compat", lambda s: s["pools"][0].update(fabric="efa"), ("pools", 0, "fabric"), "cannot use an EFA fabric"),
    ("fabric-compat", lambda s: s["fabrics"][0].pop("switch"), ("fabrics", 0, "type"), "needs a switch model"),
    ("fabric-compat", lambda s: s["fabrics"][0].update(switch="sn5600"), ("fabrics", 0, "switch"),
     "is an Ethernet switch, not InfiniBand"),
    ("fill", lambda s: s["pools"][1].update(nodes="fill"), ("pools", 1, "nodes"), "cloud pools have none"),
    ("admin-access", lambda s: s.update(access={"admin_cidrs": ["10.0.0.0/8", "0.0.0.0/0"]}),
     ("access", "admin_cidrs", 1), "whole internet"),
    ("driver-branch", lambda s: s["software"].update(driver_branch="999"), ("software", "driver_branch"),
     "unknown driver branch"),
    ("driver-branch", lambda s: (s.update(catalog={"driver_branches": [UNRELEASED]}),
                                 s["software"].update(driver_branch="625")), ("software", "driver_branch"),
     "no catalogued release"),
    ("cuda-driver", lambda s: s["software"].update(driver_branch="570"), ("software", "cuda"),
     "CUDA 13.0 needs driver >= 580.65.06"),
    ("cuda-driver", lambda s: s["software"].update(cuda="12.7"), ("software", "cuda"), "unknown CUDA release"),
    ("arch-minimum", lambda s: (s["software"].update(driver_branch="535", cuda="12.2"),
                                s["pools"][0].update(system="dgx-b200")), ("pools", 0, "system"),
     "needs driver >= 570.26"),
    ("arch-minimum", lambda s: (s["software"].update(driver_branch="580", cuda="12.8"),
                                s["pools"][0].update(system="dgx-b300")), ("pools", 0, "system"),
     "(compute capability 10.3) needs CUDA >= 12.9; the lock has 12.8"),
    ("open-modules", lambda s: (s["software"].update(open_kernel_modules=False),
                                s["pools"][0].update(system="dgx-b200")), ("software", "open_kernel_modules"),
     "only by the open GPU kernel modules"),
    ("fabric-manager", lambda s: s["software"].update(fabric_manager="580.82.07"), ("software", "fabric_manager"),
     f"does not match driver {R580}"),
    ("fabric-manager", lambda s: (s["software"].update(fabric_manager=R580),
                                  s["pools"][0].update(system="gb200-nvl72", nodes=18),
                                  s["sites"][0].update(rack_kw=130), s["pools"].pop(1)),
     ("software", "fabric_manager"), "run IMEX, not a node-local fabric manager"),
    ("nvlsm", lambda s: (s["software"].update(nvlsm=False), s["pools"][0].update(system="hgx-b200")),
     ("software", "nvlsm"), "needs NVLSM"),
    ("imex", lambda s: (s["software"].update(imex=False), s["pools"][0].update(system="gb200-nvl72", nodes=18),
                        s["sites"][0].update(rack_kw=130)), ("software", "imex"), "need nvidia-imex"),
    # IMEX asked for on R535: NVIDIA packages nvidia-imex from R550 (found by the fuzz corpus as a
    # traceback in render and inventory).
    ("packages", lambda s: s["software"].update(driver_branch="535", cuda="12.2", imex=True),
     ("software", "imex"), "no imex row for debian and R535"),
    ("dcgm", lambda s: s["software"].update(dcgm=3), ("software", "dcgm"), "DCGM 3 has no build for CUDA 13"),
    ("dcgm", lambda s: s["software"].update(dcgm=3, cuda="12.8"), ("software", "dcgm"),
     f"does not work with driver {R580}"),
    ("dcgm", lambda s: s["software"].update(dcgm_package="datacenter-gpu-manager-4-cuda12"),
     ("software", "dcgm_package"), "does not match CUDA 13.0"),
    ("gdrcopy", lambda s: s["software"].update(gdrcopy="2.4"), ("software", "gdrcopy"),
     "no GDRCopy 2.4 for CUDA 13"),
    # 2.6 is published for CUDA 13 only: a CUDA 12 lock has no folder to take it from.
    ("gdrcopy", lambda s: s["software"].update(gdrcopy="2.6", cuda="12.8"), ("software", "gdrcopy"),
     "no GDRCopy 2.6 for CUDA 12"),
    ("site-power", lambda s: s["pools"][0].update(nodes=400), ("sites", 0, "power_mw"), "budget is 5.00 MW"),
    ("rack-power", lambda s: (s["pools"][0].update(system="gb200-nvl72", nodes=18), s["sites"][0].update(rack_kw=40)),
     ("pools", 0, "system"), "over site dc1's 40 kW per rack"),
    ("rack-power", lambda s: s["sites"][0].update(rack_kw=8), ("pools", 0, "system"), "draws 10.2 kW"),
    ("catalog-overlay", lambda s: s.update(catalog={"node_hardware": [dict(HW_ROW, sockets="two")]}),
     ("catalog", "node_hardware", 0, "sockets"), "expected int"),
    ("catalog-overlay", lambda s: s.update(catalog={"nccl_env": [
        {"scope": "system", "key": "dgx-h100", "variable": "NCCL_DEBUG", "value": "$(touch /tmp/pwned)",
         "source": "x"}]}), ("catalog", "nccl_env", 0, "value"), "must be a value of letters"),
    ("catalog-overlay", lambda s: s.update(catalog={"systems": [dict(SYSTEM_ROW, source="see {{ lookup('pipe','id') }}")]}),
     ("catalog", "systems", 0, "source"), "without braces"),
    ("catalog-overlay", lambda s: s.update(catalog={"switches": [{"id": "qm9800"}]}),
     ("catalog", "switches", 0), "missing column 'name'"),
]


@pytest.mark.parametrize("check,mutation,path,words", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_check_fails_with_located_error(check, mutation, path, words):
    spec = mutate(mutation)
    found, text = errors(spec, check)
    assert found, f"{check} raised nothing"
    f = next((f for f in found if f.path == path), None)
    assert f is not None, [x.render() for x in found]
    assert words in f.message, f.render()
    assert f.hint, "every error says how to fix it"
    lines = result_lines(text)
    if f.path in lines and isinstance(path[-1], int):  # a list item: its own line
        assert f.line == lines[f.path]
    elif f.path in lines:
        assert path[-1] in text.splitlines()[f.line - 1], (f.line, f.render())
    else:  # a missing field points at the mapping that lacks it
        assert f.line == lines[f.path[:-1]]
    assert f.render().startswith(f"f.yaml:{f.line}: ")


def test_every_check_is_covered_by_a_failing_case():
    warning_only = {"non-nvidia", "host-addresses", "slurm-topology", "imex-domain", "nccl-build"}
    covered = {c[0] for c in CASES} | warning_only | {"slurm-hardware", "stack-region"}  # the last two: their own tests below
    assert covered == set(checks.CHECKS)


def test_cuda_minor_version_compatibility_is_a_warning():
    spec = mutate(lambda s: s["software"].update(driver="575.57.08", driver_branch=None, cuda="12.9"))
    spec["software"].pop("driver_branch")
    spec["software"]["cuda"] = "12.9"
    spec["software"]["driver"] = "570.195.03"
    found, _ = errors(spec, "cuda-driver")
    assert found == []
    (w,) = warnings(spec, "cuda-driver")
    assert "minor-version compatibility" in w.message


def test_eol_branch_is_a_warning_not_an_error():
    spec = mutate(lambda s: s["software"].update(driver_branch="535", cuda="12.2"))
    found, _ = run(spec, "driver-branch")
    assert [f.severity for f in found] == []  # before EOL (2026-06-30) on the fixed date
    result = validate(load_string(yaml.safe_dump(spec), "f.yaml"), today=dt.date(2026, 7, 1))
    (w,) = [f for f in result.findings if f.check == "driver-branch"]
    assert w.severity == "warning" and "end of life on 2026-06-30" in w.message
    assert result.plan is not None and not result.errors
    newest = max((b for b in load_catalog().branches.values() if b.kind == "LTSB" and b.status == "supported"),
                 key=lambda b: int(b.branch))
    assert f"such as R{newest.branch}" in w.hint


def test_a_branch_ended_without_a_date_warns_by_its_status():
    """NVIDIA publishes no end-of-life date for new-feature branches; the catalog's status says it."""
    eol = next(b for b in load_catalog().branches.values() if not b.eol and b.status == "eol" and b.latest)
    spec = mutate(lambda s: s["software"].update(driver_branch=eol.branch, cuda=eol.default_cuda))
    (w,) = [f for f in run(spec, "driver-branch")[0]]
    assert w.severity == "warning" and f"R{eol.branch} is no longer supported" in w.message


def test_nvlsm_and_imex_set_where_not_needed_warn():
    spec = mutate(lambda s: s["software"].update(nvlsm=True, imex=True))
    assert "no pool needs NVLSM" in warnings(spec, "nvlsm")[0].message
    assert "IMEX has nothing to do" in warnings(spec, "imex")[0].message


def test_non_nvidia_pool_warns():
    spec = mutate(lambda s: s["pools"][0].update(system="mi300x-8"))
    (w,) = warnings(spec, "non-nvidia")
    assert "not an NVIDIA GPU" in w.message


def test_fill_without_budget_and_twice_per_site():
    spec = mutate(lambda s: (s["sites"][0].pop("power_mw"), s["pools"][0].update(nodes="fill")))
    found, _ = errors(spec, "fill")
    assert "has no power_mw" in found[0].message
    spec = mutate(lambda s: (s["pools"].append(dict(s["pools"][0], name="dgx2", nodes="fill")),
                             s["pools"][0].update(nodes="fill")))
    found, _ = errors(spec, "fill")
    assert "a second 'fill' pool" in found[0].message


def test_su_larger_than_half_radix_is_refused():
    spec = mutate(lambda s: s["fabrics"][0].update(su_nodes=40))
    found, _ = errors(spec, "fabric-compat")
    assert "exceed half of qm9700's 64 ports" in found[0].message


def test_fabric_spanning_sites_is_refused():
    spec = mutate(lambda s: (s["sites"].append({"name": "dc2", "power_mw": 5}),
                             s["pools"].append(dict(s["pools"][0], name="dgx2", site="dc2"))))
    found, _ = errors(spec, "fabric-compat")
    assert "spans sites" in found[0].message


def test_unknown_system_suggests_closest_id():
    found, _ = errors(mutate(lambda s: s["pools"][1].update(system="p5.48xlrage")), "catalog-ids")
    assert "p5.48xlarge" in found[0].hint


def test_refs_errors_stop_before_sizing():
    result = validate(load_string(yaml.safe_dump(mutate(lambda s: s["pools"][0].update(site="nope")))), today=TODAY)
    assert result.plan is None and result.errors


def test_slurm_hardware_row_must_exist():
    spec = mutate(lambda s: (s.update(catalog={"systems": [SYSTEM_ROW]}), s["pools"][0].update(system="my-hgx")))
    found, _ = errors(spec, "slurm-hardware")
    assert [f.path for f in found] == [("pools", 0, "system")] and "node_hardware" in found[0].message
    spec["pools"][0]["scheduler"] = "none"
    assert errors(spec, "slurm-hardware")[0] == []
    spec["pools"][0]["scheduler"] = "slurm"
    spec["catalog"]["node_hardware"] = [HW_ROW]
    assert errors(spec, "slurm-hardware")[0] == []


def test_catalog_overlay_reaches_the_plan_and_replaces_rows():
    """A spec's rows are what the checks, the sizing and the plan see; a row with a packaged key
    replaces that row, and the plan records the overlay so a plan file renders the same."""
    spec = mutate(lambda s: (s.update(catalog={"systems": [SYSTEM_ROW, dict(SYSTEM_ROW, id="dgx-h100", node_kw=12.0)],
                                              "node_hardware": [HW_ROW]}),
                             s["pools"].append({"name": "mine", "site": "dc1", "provider": "onprem",
                                                "system": "my-hgx", "nodes": 2, "fabric": "ib"})))
    result = validate(load_string(yaml.safe_dump(spec), "f.yaml"), today=TODAY)
    assert result.errors == []
    plan = result.plan
    assert plan.pool("mine").gpus == 16
    assert plan.catalog().systems["dgx-h100"].node_kw == 12.0
    from aifactory.catalog import load
    assert load().systems["dgx-h100"].node_kw == 10.2  # the packaged row, outside the plan
    assert sorted(name for name, _ in plan.catalog_overlay) == ["node_hardware", "systems", "systems"]


def test_hosts_without_ip_warn_once_per_pool():
    hosts = [{"name": f"n{i}", "mac": f"aa:bb:cc:dd:ee:0{i}", "bmc": f"10.0.0.{i}"} for i in range(1, 4)]
    spec = mutate(lambda s: s["pools"][0].update(hosts=hosts, nodes=3))
    (w,) = warnings(spec, "host-addresses")
    assert w.path == ("pools", 0, "hosts", 0) and "and 2 more" in w.message
    for h in hosts:
        h["ip"] = "10.1.0." + h["bmc"].rsplit(".", 1)[1]
    assert warnings(mutate(lambda s: s["pools"][0].update(hosts=hosts, nodes=3)), "host-addresses") == []


def _nvl72(nodes: int, os_name: str):
    return mutate(lambda s: (s["software"].update(os=os_name), s["sites"][0].update(rack_kw=140),
                             s["pools"][0].update(system="gb200-nvl72", nodes=nodes), s["pools"].pop(1)))


def test_block_topology_on_an_old_slurm_and_a_short_block_warn():
    found = warnings(_nvl72(18, "debian-12"), "slurm-topology")
    assert [f.path for f in found] == [("software", "os")] and "no topology/block" in found[0].message
    assert "gets topology/tree" in found[0].message
    # A tree takes a short NVLink domain as it is: the release is the one warning.
    assert [f.path for f in warnings(_nvl72(27, "ubuntu-22.04"), "slurm-topology")] == [("software", "os")]
    found = warnings(_nvl72(27, "ubuntu-24.04"), "slurm-topology")
    assert [f.path for f in found] == [("pools", 0, "nodes")] and "9 of 18 trays" in found[0].message
    assert "Slurm 23.11" in found[0].message and "left out of topology/block" in found[0].message
    assert warnings(_nvl72(36, "ubuntu-24.04"), "slurm-topology") == []
    assert warnings(mutate(lambda s: s["software"].update(os="debian-12")), "slurm-topology") == []


def test_less_than_one_nvlink_domain_gets_a_tree_before_slurm_25_05():
    (found,) = warnings(_nvl72(9, "ubuntu-24.04"), "slurm-topology")
    assert found.path == ("pools", 0, "nodes") and "no whole domain the site gets topology/tree" in found.message


def test_an_os_without_its_own_slurm_gets_a_tree():
    (found,) = warnings(_nvl72(36, "rhel-9"), "slurm-topology")
    assert found.path == ("software", "os") and "release is not known" in found.message


def test_nvl72_beside_a_switch_tree_pool_keeps_the_tree():
    """One topology plugin per cluster: an NVL72 pool at the site of a pool on a switch fabric
    does not take that pool's switch tree away; the check says so at the NVL72 pool's site."""
    def mixed(s):
        s["sites"][0].update(rack_kw=140, power_mw=10)
        s["pools"].insert(0, {"name": "rack", "site": "dc1", "provider": "onprem", "system": "gb200-nvl72",
                              "nodes": 36, "fabric": "ib"})
    (found,) = warnings(mutate(mixed), "slurm-topology")
    assert found.path == ("pools", 0, "site")
    assert "mixes NVL72 pool rack with dgx" in found.message and "keeps topology/tree" in found.message
    # A pool with no switch tree to keep (no factory-built fabric) does not stop topology/block.
    def beside_ethernet(s):
        mixed(s)
        s["fabrics"].append({"name": "eth", "type": "ethernet", "switch": "sn5600"})
        s["pools"][1]["fabric"] = "eth"
    spec = mutate(beside_ethernet)
    assert validate(load_string(yaml.safe_dump(spec), "f.yaml"), today=TODAY).errors == []
    assert warnings(spec, "slurm-topology") == []


def test_slurm_topology_decision_per_release():
    plan = validate(load_string(yaml.safe_dump(_nvl72(36, "ubuntu-24.04")), "f.yaml"), today=TODAY).plan
    (rack,) = plan.pools
    decide = checks.slurm_topology_of
    assert decide([rack], plan.fabrics, (23, 11)) == checks.SlurmTopology(True)
    assert decide([rack], plan.fabrics, (22, 5)).reason == "release"
    assert decide([rack], plan.fabrics, None).reason == "unknown"
    # Domains of another node count (8-GPU trays: 9 per domain) cannot share one topology/block.
    other = rack.model_copy(update={"name": "rack2", "gpus_per_node": 8})
    assert decide([rack, other], plan.fabrics, (25, 5)) == checks.SlurmTopology(False, "sizes", (rack.name, "rack2"))
    # Less than one whole domain: no block before 25.05, one block counted whole from 25.05.
    small = rack.model_copy(update={"nodes": 9})
    assert decide([small], plan.fabrics, (24, 11)).reason == "short"
    assert decide([small], plan.fabrics, (25, 5)).block


def test_the_lock_holds_the_slurm_release_that_the_check_and_the_renderer_read():
    from aifactory.render import slurm

    for os_name, release in (("ubuntu-24.04", "23.11"), ("debian-12", "22.05"), ("debian-13", "24.11"),
                             ("ubuntu-22.04", "21.08"), ("rhel-9", None)):
        spec = mutate(lambda s: s["software"].update(os=os_name))
        spec["pools"].pop(1)  # AWS publishes no rhel-9 image
        lock = validate(load_string(yaml.safe_dump(spec), "f.yaml"), today=TODAY).plan.software
        assert lock.slurm == release
        assert lock.slurm_release == (tuple(int(x) for x in release.split(".")) if release else None)
    # One release, the lock's: neither the check nor the renderer has a table of its own.
    assert not hasattr(checks, "SLURM_BY_OS") and not hasattr(slurm, "slurm_release")
    assert slurm.slurm_topology_of is checks.slurm_topology_of


def test_debian_13_boots_on_aws_and_gcp_and_is_refused_where_no_image_is_published():
    """Debian 13 passes provider-images on AWS (the base spec's p5 pool) and GCP, and fails it
    on OCI and Azure, at the software.os line, naming what the provider does publish."""
    spec = mutate(lambda s: (s["software"].update(os="debian-13"),
                             s["sites"].append({"name": "gcp1", "provider": "gcp", "region": "us-central1"}),
                             s["pools"].append({"name": "a3", "site": "gcp1", "provider": "gcp",
                                                "system": "a3-highgpu-8g", "nodes": 2, "zones": ["us-central1-a"]})))
    result = validate(load_string(yaml.safe_dump(spec, sort_keys=False), "f.yaml"), today=TODAY)
    assert [f for f in result.findings if f.check == "provider-images"] == []
    assert result.plan.software.os == "debian-13" and result.plan.software.slurm == "24.11"

    for add, offered in ((with_oci, "rhel-9, ubuntu-22.04, ubuntu-24.04"), (with_azure, "ubuntu-22.04, ubuntu-24.04")):
        text = yaml.safe_dump(mutate(lambda s: (s["software"].update(os="debian-13"), add(s))), sort_keys=False)
        result = validate(load_string(text, "f.yaml"), today=TODAY)
        (f,) = [f for f in result.findings if f.check == "provider-images"]
        assert f.severity == "error" and f.line == result_lines(text)[("software", "os")]
        assert f.hint.endswith(f"x86_64 nodes: {offered}"), f.hint
        assert re.fullmatch(rf"f\.yaml:{f.line}: software\.os: \w+ has no debian-13 image for x86_64 nodes .*"
                            r"\[provider-images\]", f.render())


def test_imex_domain_larger_than_its_peer_limit_warns(monkeypatch):
    import dataclasses

    from aifactory.catalog import load

    catalog = load()
    big = dataclasses.replace(catalog.systems["gb200-nvl72"], nvlink_domain_gpus=144)
    monkeypatch.setitem(catalog.systems, "gb200-nvl72", big)
    spec = _nvl72(36, "ubuntu-24.04")
    result = validate(load_string(yaml.safe_dump(spec), "f.yaml"), catalog=catalog, today=TODAY)
    (w,) = [f for f in result.findings if f.check == "imex-domain"]
    assert w.severity == "warning" and "36 nodes in one NVLink domain" in w.message
    monkeypatch.undo()
    assert [f for f in validate(load_string(yaml.safe_dump(spec), "f.yaml"), today=TODAY).findings
            if f.check == "imex-domain"] == []


def test_checks_command_lists_every_registered_check():
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "aifactory", "checks", "-f", "json"], capture_output=True,
                         text=True, check=True).stdout
    listed = json.loads(out)
    assert [c["name"] for c in listed] == list(checks.CHECKS)
    for c in listed:
        assert c["severity"] in ("error", "warning", "both") and c["phase"] in checks.PHASES
        assert len(c["rationale"]) > 20 and "\n" not in c["rationale"]
    table = subprocess.run([sys.executable, "-m", "aifactory", "checks"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert len(table) == len(checks.CHECKS) and table[0].startswith("catalog-overlay")


def test_a_cuda_minor_older_than_every_nccl_build_warns():
    spec = mutate(lambda s: s["software"].update(driver_branch="535", cuda="12.0"))
    (w,) = warnings(spec, "nccl-build")
    assert "no libnccl2 build at or below CUDA 12.0" in w.message and w.path == ("software", "cuda")
    assert warnings(mutate(lambda s: s["software"].update(driver_branch="535", cuda="12.2")), "nccl-build") == []


def test_fill_that_leaves_fewer_nodes_than_declared_hosts_is_an_error_not_a_crash():
    hosts = [{"name": f"n{i}", "mac": f"aa:bb:cc:dd:ee:0{i}", "bmc": f"10.0.0.{i}", "ip": f"10.1.0.{i}"}
             for i in range(1, 4)]
    spec = mutate(lambda s: (s["sites"][0].update(power_mw=0.04), s["pools"][0].update(nodes="fill", hosts=hosts)))
    result = validate(load_string(yaml.safe_dump(spec), "f.yaml"), today=TODAY)
    assert result.plan is None
    assert any(f.check == "site-power" and f.path == ("pools", 0, "hosts") and "fewer than the 3 hosts" in f.message
               for f in result.errors), [f.render() for f in result.findings]


def test_a_pool_larger_than_a_10_gw_site_is_refused():
    found = load_errors(mutate(lambda s: s["pools"][1].update(nodes=2_000_001)))
    assert any(f.path == ("pools", 1, "nodes") and "2,000,000" in f.message for f in found)


def test_stack_region_must_match_the_sites(tmp_path):
    """A spec in a Pulumi project folder: each stack's provider region is where its pools are built."""
    import shutil
    from pathlib import Path

    from aifactory import spec as specs

    stack = Path(__file__).resolve().parents[2] / "stacks" / "multicloud"
    for f in stack.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    assert [f for f in validate(specs.load(tmp_path / "factory.yaml"), today=TODAY).findings
            if f.check == "stack-region"] == []
    config = tmp_path / "Pulumi.dev.yaml"
    text = config.read_text()
    key = next(k for k in ("gcp:region", "aws:region") if k in text)
    config.write_text(re.sub(rf"{key}: \S+", f"{key}: antarctica-south1", text))
    loaded = specs.load(tmp_path / "factory.yaml")
    (f,) = [f for f in validate(loaded, today=TODAY).findings if f.check == "stack-region"]
    assert f.severity == "error" and "antarctica-south1" in f.message and f"{key} in Pulumi.dev.yaml:" in f.message
    assert f.path[-1] == "region" and f.line == loaded.doc.line_of(f.path)
    config.write_text(text)
    (tmp_path / "Pulumi.prod.yaml").write_text(f"config:\n  {key}: mars-north1\n")
    (f,) = [f for f in validate(specs.load(tmp_path / "factory.yaml"), today=TODAY).findings if f.check == "stack-region"]
    assert "stack prod" in f.message
