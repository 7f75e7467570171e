"""The provider registry: built-ins in code, plugins through the ``aifactory.providers`` entry points."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from aifactory import providers
from aifactory.components import base, program
from aifactory.components.pool import InventoryPool
from aifactory.errors import AifactoryError
from tests.conftest import missing

SDKS = ("pulumi_aws", "pulumi_gcp", "pulumi_azure_native", "pulumi_oci")


@pytest.fixture(autouse=True)
def _fresh_registry():
    providers.reset()
    yield
    providers.reset()


# --- built-ins ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, module", [("aws", "aws"), ("gcp", "gcp"), ("azure", "azure"), ("oci", "oci")])
def test_each_cloud_resolves_to_its_own_gpupool(name, module):
    import importlib

    cls = providers.component_class(name)
    assert cls is importlib.import_module(f"aifactory.components.{module}").GpuPool
    assert cls.TYPE == providers.get(name).type_token == base.type_token(name) == f"aifactory:{name}:GpuPool"
    assert program.component_class(name) is cls


def test_onprem_and_lab_map_to_inventory_pools_explicitly():
    from aifactory.components import onprem

    assert providers.component_class("onprem", declared_hosts=2) is onprem.GpuPool
    assert providers.component_class("onprem", declared_hosts=0) is InventoryPool
    assert providers.get("onprem").component_path(0) == providers.INVENTORY_POOL
    assert providers.component_class("lab", declared_hosts=3) is InventoryPool
    assert dict(providers.LAB.inventory_fields) == {"connection": "chroot"}
    assert dict(providers.ONPREM.inventory_fields) == {"managed": "inventory-only"}


def test_the_spec_planner_and_renderer_read_the_registry():
    """No module keeps its own provider list: a name the registry does not know is refused by the
    spec with the known ones listed, and the planner's and renderer's provider facts are the
    descriptors'."""
    from aifactory.errors import SpecError
    from aifactory.spec import load_string

    text = "name: f\nsites: [{name: s, power_mw: 1}]\npools: [{name: p, site: s, provider: %s, system: dgx-h100, nodes: 1}]\n"
    load_string(text % "onprem")
    with pytest.raises(SpecError) as err:
        load_string(text % "vmware")
    (finding,) = err.value.findings
    assert finding.path == ("pools", 0, "provider") and "unknown provider 'vmware'" in finding.message
    assert "aws, gcp, azure, oci, onprem, lab" in finding.message
    assert providers.names()[:len(providers.BUILTIN)] == tuple(providers.BUILTIN)
    assert providers.where(lambda p: p.on_site) == ("onprem", "lab")
    assert providers.where(lambda p: p.cloud_init) == ("aws", "gcp", "azure", "oci")
    assert providers.get("lab").systems_from == "onprem" and providers.get("aws").systems_from == "aws"


def test_a_plugin_provider_is_planned_from_a_spec_with_its_own_catalog_rows(site, tmp_path):
    """A plugin provider plus a catalog overlay with its instance type: validate, plan and render
    all work from the spec, with no change to aifactory."""
    import yaml

    from aifactory import plan as planning
    from aifactory.render.deployment import build_files
    from aifactory.spec import load_string

    _tinycloud(site)
    row = {"id": "tiny.8xh100", "provider": "tinycloud", "gpu": "h100-sxm", "gpus_per_node": 8,
           "nvlink_domain_gpus": 8, "node_kw": 10.0, "nvswitch": True, "fabric_manager": True, "nvlsm": False,
           "imex": False, "cpu_arch": "x86_64", "fabric": "roce", "fabric_nics": 8, "nic_gbps": 400, "mtu": 4200,
           "source": "TinyCloud instance guide"}
    spec = {"name": "tiny", "sites": [{"name": "t1", "provider": "tinycloud", "region": "tiny-east"}],
            "fabrics": [{"name": "rdma", "type": "roce"}],
            "pools": [{"name": "gpu", "site": "t1", "provider": "tinycloud", "system": "tiny.8xh100", "nodes": 4,
                       "fabric": "rdma", "zones": ["tz-1"], "scheduler": "none"}],
            "catalog": {"instance_types": [row]}}
    plan = planning.build(load_string(yaml.safe_dump(spec), "f.yaml"))
    assert plan.pool("gpu").gpus == 32 and plan.pool("gpu").provider == "tinycloud"
    files = build_files(plan)
    assert "cloud-init/gpu/user-data.yaml" not in files  # the descriptor says no cloud-init
    assert "inventory/group_vars/pool_gpu.yml" in files
    spec["pools"][0]["zones"] = []
    from aifactory.plan import validate
    result = validate(load_string(yaml.safe_dump(spec), "f.yaml"))
    assert [f.check for f in result.errors] == ["provider-zones"]


def test_per_provider_facts_come_from_the_descriptors():
    assert providers.where(lambda p: p.labels) == ("gcp", "oci")
    assert providers.where(lambda p: p.zone_required is not None) == ("aws", "gcp")
    assert "placement group" in providers.get("aws").zone_required
    assert providers.get("azure").zone_required is None and providers.find("nope") is None
    assert base.uses_labels("gcp") and not base.uses_labels("aws") and not base.uses_labels("nope")


@pytest.mark.parametrize("provider, os_name, arch, expected", [
    ("aws", "ubuntu-24.04", "arm64",
     "/aws/service/deeplearning/ami/arm64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"),
    ("aws", "rhel-9", "x86_64", None),
    ("gcp", "rhel-9", "arm64", "projects/rhel-cloud/global/images/family/rhel-9-arm64"),
    ("azure", "ubuntu-22.04", "x86_64",
     {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204", "version": "latest"}),
    ("azure", "ubuntu-22.04", "arm64", None),
    ("oci", "rhel-9", "arm64", ("Oracle Linux", "9")),
    ("oci", "debian-12", "x86_64", None),
    # Debian 13: the Debian cloud team's public AMI parameters and debian-cloud's image families;
    # no image on Azure (HPC images only) or OCI (no Debian platform image).
    ("aws", "debian-13", "x86_64", "/aws/service/debian/release/13/latest/amd64"),
    ("aws", "debian-13", "arm64", "/aws/service/debian/release/13/latest/arm64"),
    ("gcp", "debian-13", "x86_64", "projects/debian-cloud/global/images/family/debian-13"),
    ("gcp", "debian-13", "arm64", "projects/debian-cloud/global/images/family/debian-13-arm64"),
    ("azure", "debian-13", "x86_64", None),
    ("oci", "debian-13", "x86_64", None),
    ("oci", "debian-13", "arm64", None),
    ("onprem", "debian-13", "x86_64", "any"),
    ("lab", "debian-13", "arm64", "any"),
    ("onprem", "debian-12", "arm64", "any"),
    ("lab", "rhel-9", "x86_64", "any"),
])
def test_image_lookup_per_provider(provider, os_name, arch, expected):
    assert providers.get(provider).image(os_name, arch) == expected


def test_a_missing_image_names_the_field_and_what_the_provider_offers():
    with pytest.raises(AifactoryError, match=r"^software\.os: ubuntu-24\.04 on arm64 has no Ubuntu HPC image on "
                                             r"Azure; Azure has images for x86_64 nodes only$"):
        providers.AZURE.require_image("ubuntu-24.04", "arm64")
    with pytest.raises(AifactoryError,
                       match=r"platform image on OCI; use one of rhel-9, ubuntu-22\.04, ubuntu-24\.04$"):
        providers.OCI.require_image("debian-12", "x86_64")
    assert providers.AZURE.require_image("ubuntu-24.04", "x86_64")["sku"] == "2404"
    with pytest.raises(AifactoryError, match=r"^software\.os: debian-13 on x86_64 has no Ubuntu HPC image on Azure; "
                                             r"use one of ubuntu-22\.04, ubuntu-24\.04$"):
        providers.AZURE.require_image("debian-13", "x86_64")
    with pytest.raises(AifactoryError, match=r"^software\.os: debian-13 on arm64 has no platform image on OCI; "
                                             r"use one of rhel-9, ubuntu-22\.04, ubuntu-24\.04$"):
        providers.OCI.require_image("debian-13", "arm64")
    assert providers.AWS.require_image("debian-13", "arm64") == "/aws/service/debian/release/13/latest/arm64"


# --- unknown names -----------------------------------------------------------------------------

def test_unknown_provider_lists_the_known_ones():
    with pytest.raises(AifactoryError) as err:
        providers.get("vmware")
    assert str(err.value) == ("provider: no component for provider 'vmware'; "
                              "known: aws, gcp, azure, oci, onprem, lab")
    with pytest.raises(AifactoryError, match=r"^pools\[\]\.provider: no component for provider 'vmware'"):
        program.component_class("vmware")
    assert providers.find("vmware") is None


@pytest.mark.parametrize("hostile", ["aws\nERROR: forged line " + "x" * 5000, None, 3, ["aws"]])
def test_hostile_provider_names_give_one_short_line(hostile):
    with pytest.raises(AifactoryError) as err:
        providers.get(hostile, "pools.gpu.provider")
    message = str(err.value)
    assert message.startswith("pools.gpu.provider: no component for provider ")
    assert "\n" not in message and len(message) < 200


@pytest.mark.parametrize("fields, message", [
    ({"name": "Bad_Name", "component": None}, "provider name 'Bad_Name': must be a lowercase name"),
    ({"name": "x" * 40, "component": None}, "at most 32 characters"),
    ({"name": "ok", "component": "no colon here"}, "provider ok: component must be an import path"),
    ({"name": "ok", "component": "m:C", "images": {"ubuntu-24.04": "img"}}, "images must map \\(os, cpu_arch\\)"),
])
def test_a_malformed_descriptor_is_refused_when_built(fields, message):
    with pytest.raises(AifactoryError, match=message):
        providers.Provider(**fields)


# --- plugins through real entry points --------------------------------------------------------

def _distribution(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata finds one: ``<dist>-1.0.dist-info`` with
    METADATA and entry_points.txt, and its modules, all on one sys.path folder."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{providers.GROUP}]\n{lines}")
    for rel, text in modules.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


TINY_DESCRIPTOR = """
    from aifactory.providers import Provider

    # Only the descriptor: the component module below imports the (imaginary) cloud SDK.
    TINYCLOUD = Provider(
        "tinycloud", "tinycloud_plugin.pool:GpuPool", title="TinyCloud", labels=True,
        zone_required="its racks live in one zone",
        images={("ubuntu-24.04", "x86_64"): "tiny-ubuntu-2404"})
"""

TINY_POOL = """
    from aifactory.components.pool import PoolComponent


    class GpuPool(PoolComponent):
        TYPE = "aifactory:tinycloud:GpuPool"

        def __init__(self, name, pool, plan, opts=None):
            super().__init__(name, pool, plan, opts)
            self.require_zones()
            self.publish([], [], {"managed": "tinycloud", "image": self.image(),
                                  "node_tags": self.tags("node")})
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A sys.path folder for plugin distributions; their modules are forgotten afterwards."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.split(".")[0].endswith("_plugin"):
            del sys.modules[name]


def _tinycloud(site: Path) -> None:
    _distribution(site, "tinycloud-plugin", {"tinycloud": "tinycloud_plugin:TINYCLOUD"},
                  {"tinycloud_plugin/__init__.py": TINY_DESCRIPTOR, "tinycloud_plugin/pool.py": TINY_POOL})
    providers.reset()


def test_a_plugin_provider_becomes_selectable_and_its_component_is_loaded_lazily(site):
    _tinycloud(site)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good plugin warns about nothing
        assert providers.names() == ("aws", "gcp", "azure", "oci", "onprem", "lab", "tinycloud")
        descriptor = providers.get("tinycloud")
    assert descriptor.title == "TinyCloud" and descriptor.type_token == "aifactory:tinycloud:GpuPool"
    assert "tinycloud_plugin.pool" not in sys.modules  # the descriptor alone does not load the component
    assert descriptor.zone_required == "its racks live in one zone"
    assert descriptor.image("ubuntu-24.04", "x86_64") == "tiny-ubuntu-2404"
    assert descriptor.image("debian-12", "x86_64") is None
    assert base.uses_labels("tinycloud")

    cls = program.component_class("tinycloud")
    assert cls is sys.modules["tinycloud_plugin.pool"].GpuPool and cls.TYPE == "aifactory:tinycloud:GpuPool"


def test_a_plugin_pool_runs_through_the_stack_program(site, tmp_path):
    """A reviewed plan file naming the plugin's provider previews with the plugin's component,
    which gets the shared behaviour (labels, zones, images) from its descriptor."""
    from aifactory import plan as planning
    from aifactory import spec
    from aifactory.preview import preview
    from tests.preview.harness import make_stack

    _tinycloud(site)
    lab = tmp_path / "lab"
    make_stack(lab, """
        name: lab1
        software: {os: ubuntu-24.04}
        sites: [{name: lab, power_mw: 0.05}]
        pools: [{name: gpu, site: lab, provider: lab, system: hgx-h100, nodes: 2}]
    """)
    doc = planning.build(spec.load(lab / "factory.yaml")).to_dict()
    (pool,) = doc["pools"]
    pool.update(provider="tinycloud", zones=["tz-1"])
    stack = make_stack(tmp_path / "tiny", "name: unused\n", config={"aifactory:factory": "plan.json"})
    (stack / "plan.json").write_text(json.dumps(doc))

    result = preview(stack)
    assert [(r.type, r.name) for r in result.resources] == [("aifactory:tinycloud:GpuPool", "gpu")]
    inv = result.outputs["inventory"]["gpu"]
    assert inv["provider"] == "tinycloud" and inv["managed"] == "tinycloud" and inv["image"] == "tiny-ubuntu-2404"
    assert inv["node_tags"]["aifactory-pool"] == "gpu"  # label-shaped, as the descriptor says
    assert inv["selector"] == {"aifactory-factory": "lab1", "aifactory-pool": "gpu", "aifactory-role": "node"}

    pool["zones"] = []
    (stack / "plan.json").write_text(json.dumps(doc))
    with pytest.raises(AifactoryError,
                       match="pools.gpu.zones: tinycloud pools need a zone: its racks live in one zone"):
        preview(stack)


def test_a_plugin_whose_component_cannot_be_imported_is_a_clear_error(site):
    _distribution(site, "ghost-plugin", {"ghost": "ghost_plugin:GHOST"}, {"ghost_plugin/__init__.py": """
        from aifactory.providers import Provider

        GHOST = Provider("ghost", "ghost_plugin.missing_sdk_pool:GpuPool")
    """})
    providers.reset()
    assert providers.get("ghost").name == "ghost"
    with pytest.raises(AifactoryError, match=r"^pools\[\]\.provider: ghost pools need the Python module "
                                             r"ghost_plugin\.missing_sdk_pool, which cannot be imported"):
        providers.component_class("ghost")


def test_a_plugin_may_name_a_factory_function(site):
    _distribution(site, "made-plugin", {"made": "made_plugin:descriptor"}, {"made_plugin.py": """
        from aifactory.providers import Provider

        def descriptor():
            return Provider("made", None, inventory_fields={"connection": "ssh"})
    """})
    providers.reset()
    assert providers.component_class("made") is InventoryPool
    assert dict(providers.get("made").inventory_fields) == {"connection": "ssh"}


BROKEN = {
    "import": ({"crash": "crash_plugin:CRASH"}, {"crash_plugin.py": "raise RuntimeError('no SDK credentials')\n"},
               "entry point crash = crash_plugin:CRASH of distribution broken-plugin failed to load "
               "\\(RuntimeError: no SDK credentials\\)"),
    "missing": ({"gone": "gone_plugin:GONE"}, {},
                "entry point gone = gone_plugin:GONE of distribution broken-plugin failed to load "
                "\\(ModuleNotFoundError: No module named 'gone_plugin'\\)"),
    "not-a-descriptor": ({"dict": "dict_plugin:DESCRIPTOR"},
                         {"dict_plugin.py": "DESCRIPTOR = {'name': 'dict', 'component': 'x:Y'}\n"},
                         "does not name an aifactory.providers.Provider \\(it names a dict\\)"),
    "other-name": ({"alias": "alias_plugin:OTHER"},
                   {"alias_plugin.py": "from aifactory.providers import Provider\nOTHER = Provider('other', None)\n"},
                   "yields provider 'other', not 'alias': the names must agree"),
    "bad-descriptor": ({"worse": "worse_plugin:BAD"},
                       {"worse_plugin.py": "from aifactory.providers import Provider\n"
                                           "BAD = Provider('worse', 'not a path')\n"},
                       "failed to load \\(AifactoryError: provider worse: component must be an import path"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_plugin_is_left_out_with_a_warning_and_named_when_asked_for(site, case):
    entry_points, modules, why = BROKEN[case]
    (name,) = entry_points
    _distribution(site, "broken-plugin", entry_points, modules)
    providers.reset()
    with pytest.warns(providers.ProviderPluginWarning, match=f"provider {name} is left out: .*{why}"):
        known = providers.names()
    assert name not in known and "aws" in known
    assert providers.component_class("aws").TYPE == "aifactory:aws:GpuPool"  # others are unaffected
    with pytest.raises(AifactoryError, match=f"^pools\\[\\]\\.provider: provider '{name}' is not available: "
                                             f".*{why}.*; known: aws, gcp, azure, oci, onprem, lab$"):
        program.component_class(name)


def test_a_plugin_cannot_replace_a_built_in(site):
    _distribution(site, "evil-plugin", {"aws": "evil_plugin:AWS"}, {"evil_plugin.py": """
        from aifactory.providers import Provider

        AWS = Provider("aws", "evil_plugin:GpuPool")
        raise SystemExit("a replacement of a built-in must never be imported")
    """})
    providers.reset()
    with pytest.warns(providers.ProviderPluginWarning,
                      match="entry point aws = evil_plugin:AWS of distribution evil-plugin is ignored: aws is a "
                            "built-in provider, which a plugin cannot replace"):
        assert providers.registry()["aws"] is providers.AWS
    assert "evil_plugin" not in sys.modules
    assert providers.get("aws") is providers.AWS


def test_two_plugins_claiming_one_name_are_both_left_out(site):
    for dist in ("one-plugin", "two-plugin"):
        module = dist.replace("-", "_")
        _distribution(site, dist, {"twin": f"{module}:TWIN"}, {f"{module}.py": """
            from aifactory.providers import Provider

            TWIN = Provider("twin", None)
        """})
    providers.reset()
    with pytest.warns(providers.ProviderPluginWarning, match="provider twin is left out: it is declared by more "
                                                             "than one plugin"):
        assert "twin" not in providers.names()
    with pytest.raises(AifactoryError, match="one-plugin.*two-plugin"):
        providers.get("twin")


def test_built_ins_need_no_package_metadata(tmp_path):
    """From a bare copy of the source tree (no metadata anywhere), the built-ins are all there."""
    import shutil

    shutil.copytree(Path(providers.__file__).resolve().parent, tmp_path / "src" / "aifactory",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import importlib.metadata, sys\n"
            # the standard library only: no site-packages, no editable-install path, no metadata
            "sys.path[:] = [p for p in sys.path if p.startswith(sys.base_prefix) and 'site-packages' not in p]\n"
            f"sys.path.insert(0, {str(tmp_path / 'src')!r})\n"
            "from aifactory import providers\n"
            "assert providers.__file__.startswith(sys.path[0]), providers.__file__\n"
            "assert not list(importlib.metadata.entry_points(group=providers.GROUP))\n"
            "print(','.join(providers.names()), providers.get('lab').component_path())\n")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["aws,gcp,azure,oci,onprem,lab", providers.INVENTORY_POOL]


def test_stale_metadata_of_this_distribution_changes_nothing(site):
    """An old install of this distribution may declare built-ins by other paths, or a provider the
    code no longer has: the code is what counts, and nothing is imported or warned about."""
    _distribution(site, providers.DISTRIBUTION, {"aws": "aifactory.old_providers:AWS",
                                                 "vsphere": "aifactory.providers:VSPHERE"}, {})
    providers.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert providers.names() == tuple(providers.BUILTIN)
    assert providers.get("aws") is providers.AWS
    with pytest.raises(AifactoryError, match="no component for provider 'vsphere'"):
        providers.get("vsphere")


def test_the_installed_metadata_declares_the_built_ins():
    import importlib.metadata

    declared = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=providers.GROUP)
                if ep.dist is not None and ep.dist.name == providers.DISTRIBUTION}
    if not declared:
        missing("the distribution is not installed: `pip install -e .` registers its entry points")
    assert declared == {name: f"aifactory.providers:{name.upper()}" for name in providers.BUILTIN}
    for value in declared.values():
        assert importlib.metadata.EntryPoint(name="x", value=value, group=providers.GROUP).load() in \
            providers.BUILTIN.values()


def test_importing_the_registry_imports_no_cloud_sdk():
    code = ("import sys\n"
            "from aifactory import providers\n"
            "from aifactory.components import base\n"
            "providers.names(); providers.get('aws').image('ubuntu-24.04', 'x86_64'); providers.get('onprem')\n"
            "base.uses_labels('gcp'); base.aws_ami_parameter('ubuntu-24.04', 'x86_64')\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SDKS + ('pulumi',)!r}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
