"""PXE provisioning files, checked by their real consumers: dnsmasq --test and cloud-init schema."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from aifactory import plan as planning
from aifactory import spec
from aifactory.cli import app
from aifactory.errors import AifactoryError
from aifactory.render.pxe import PxeSettings, pxe_files, read_inventory, render_pxe
from tests.conftest import STACKS, require_tool

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3f9sBzYdQ7Rk1f2T4pP5uVYc6qk0m4d0l7q9x2Ya ops@controller"
EXAMPLE = STACKS / "onprem-dgx" / "factory.yaml"


def _settings(**kw) -> PxeSettings:
    base = dict(server_ip="10.20.0.2", ssh_public_keys=(KEY,), gateway="10.20.0.1", dns=("10.20.0.53",),
                domain="hall1.example.com")
    base.update(kw)
    return PxeSettings(**base)


def _load(path: Path = EXAMPLE):
    loaded = spec.load(path)
    return planning.build(loaded), loaded.factory


def _spec_file(tmp_path: Path, edit) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    edit(doc)
    path = tmp_path / "factory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _dnsmasq_test(conf: Path) -> subprocess.CompletedProcess:
    tool = require_tool("dnsmasq", "dnsmasq-base")
    return subprocess.run([tool, "--test", f"--conf-file={conf}"], capture_output=True, text=True, timeout=30)


def _schema(path: Path) -> subprocess.CompletedProcess:
    tool = require_tool("cloud-init", "cloud-init")
    return subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120)


# -- the real consumers ------------------------------------------------------------------------

@pytest.mark.slow
def test_dnsmasq_accepts_the_rendered_config(tmp_path):
    plan, factory = _load()
    render_pxe(plan, tmp_path, _settings(inventory={"dgx-001": ["5c:ff:35:a0:00:01", "5c:ff:35:a0:10:01"]}))
    conf = tmp_path / "dnsmasq.conf"
    result = _dnsmasq_test(conf)
    assert result.returncode == 0, result.stderr
    assert "syntax check OK" in result.stdout + result.stderr
    # The consumer really checks: the same file with one broken line is refused.
    broken = tmp_path / "broken.conf"
    broken.write_text(conf.read_text().replace("dhcp-range=10.20.0.0,static", "dhcp-range=10.20.0.0,statik"))
    assert _dnsmasq_test(broken).returncode != 0


@pytest.mark.slow
def test_cloud_init_accepts_the_autoinstall_user_data_and_its_nested_cloud_config(tmp_path):
    plan, factory = _load()
    render_pxe(plan, tmp_path, _settings())
    node = tmp_path / "http" / "autoinstall" / "dgx-001"
    whole = _schema(node / "user-data")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    # The installed system's cloud-init reads the autoinstall's user-data section on first boot:
    # validate it as the cloud-config it becomes there.
    doc = yaml.safe_load((node / "user-data").read_text())
    nested = tmp_path / "nested-user-data"
    nested.write_text("#cloud-config\n" + yaml.safe_dump(doc["autoinstall"]["user-data"]))
    result = _schema(nested)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _schema(node / "vendor-data").returncode == 0
    # And cloud-init does reject a wrong type there.
    bad = tmp_path / "bad-user-data"
    broken = dict(doc["autoinstall"]["user-data"], disable_root="maybe")
    bad.write_text("#cloud-config\n" + yaml.safe_dump(broken))
    assert _schema(bad).returncode != 0


# -- content ---------------------------------------------------------------------------------------

def test_leases_are_static_known_hosts_only_and_chain_to_ipxe():
    plan, factory = _load()
    files = pxe_files(plan, _settings())
    conf = files["dnsmasq.conf"]
    assert "dhcp-range=10.20.0.0,static,255.255.255.0,infinite" in conf
    assert "dhcp-ignore=tag:!known" in conf  # nobody else gets installed
    assert "port=0" in conf  # no DNS server on the provisioning host
    hosts = [line for line in conf.splitlines() if line.startswith("dhcp-host=")]
    assert hosts == [f"dhcp-host=5c:ff:35:a0:00:0{i},dgx-00{i},10.20.0.1{i},infinite" for i in range(1, 5)]
    assert "dhcp-boot=tag:!ipxe,tag:efi-x86_64,ipxe.efi" in conf
    assert "dhcp-boot=tag:ipxe,http://10.20.0.2:8080/boot.ipxe" in conf
    assert "${netX/mac:hexhyp}" in files["http/boot.ipxe"]
    script = files["http/ipxe/5c-ff-35-a0-00-01.ipxe"]
    assert script.startswith("#!ipxe\n")
    assert "ubuntu-22.04.5-live-server-amd64.iso" in script and "autoinstall" in script
    assert "ds=nocloud-net;s=http://10.20.0.2:8080/autoinstall/dgx-001/" in script


def test_autoinstall_brings_the_node_to_an_ansible_ready_state():
    plan, factory = _load()
    doc = yaml.safe_load(pxe_files(plan, _settings())["http/autoinstall/dgx-003/user-data"])
    auto = doc["autoinstall"]
    assert auto["version"] == 1 and "python3" in auto["packages"] and "openssh-server" in auto["packages"]
    assert auto["network"]["ethernets"]["boot"]["match"]["macaddress"] == "5c:ff:35:a0:00:03"
    assert auto["ssh"] == {"install-server": True, "allow-pw": False, "authorized-keys": [KEY]}
    cloud = auto["user-data"]
    (user,) = cloud["users"]
    assert user["name"] == factory.access.ssh_user == "aifactory"
    assert user["ssh_authorized_keys"] == [KEY] and user["lock_passwd"] is True
    assert user["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert cloud["hostname"] == "dgx-003" and cloud["fqdn"] == "dgx-003.hall1.example.com"
    assert cloud["ssh_pwauth"] is False and cloud["disable_root"] is True


def test_no_password_material_is_rendered_and_files_are_not_writable_by_others(tmp_path):
    plan, factory = _load()
    written = render_pxe(plan, tmp_path, _settings())
    assert len(written) == 2 + 4 * 4  # dnsmasq.conf, boot.ipxe, per host: ipxe + 3 autoinstall files
    for path in written:
        text = path.read_text()
        # No hashed or plain password anywhere (these files are served over plain HTTP).
        assert not re.search(r"^\s*-?\s*(passwd|password|hashed_passwd|plain_text_passwd)\s*:", text, re.M), path
        for marker in ("$6$", "$y$", "$5$", "PRIVATE KEY"):
            assert marker not in text, (path, marker)
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o644, (path, oct(mode))


def test_rendering_is_deterministic(tmp_path):
    plan, factory = _load()
    a = pxe_files(plan, _settings())
    plan2, factory2 = _load()
    assert a == pxe_files(plan2, _settings())
    render_pxe(plan, tmp_path / "one", _settings())
    render_pxe(plan, tmp_path / "two", _settings())
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file()}
    two = {p.relative_to(tmp_path / "two"): p.read_bytes() for p in (tmp_path / "two").rglob("*") if p.is_file()}
    assert one == two and len(one) == 18 + 1  # and the writer's manifest


def test_redfish_inventory_adds_the_other_macs_of_a_node(tmp_path):
    plan, factory = _load()
    inventory = tmp_path / "inventory.json"
    # The shape of `pulumi stack output inventory --json` for the on-prem pool.
    inventory.write_text(json.dumps({"dgx": {"hosts": [
        {"name": "dgx-002", "macs": ["5C:FF:35:A0:00:02", "5c:ff:35:a0:20:02"]}]}}))
    files = pxe_files(plan, _settings(inventory=read_inventory(inventory)))
    assert "dhcp-host=5c:ff:35:a0:00:02,5c:ff:35:a0:20:02,dgx-002,10.20.0.12,infinite" in files["dnsmasq.conf"]


# -- bad input: one clear line naming the field ---------------------------------------------------

@pytest.mark.parametrize("kw, field", [
    ({"server_ip": "10.20.0.999"}, "pxe.server_ip"),
    ({"ssh_public_keys": ()}, "pxe.ssh_public_keys"),
    ({"ssh_public_keys": ("-----BEGIN OPENSSH PRIVATE KEY-----",)}, "pxe.ssh_public_keys[0]"),
    ({"ssh_public_keys": (KEY + "\nruncmd: [rm]",)}, "pxe.ssh_public_keys[0]"),
    ({"interface": "eno1\nconf-file=/etc/shadow"}, "pxe.interface"),
    ({"subnet": "192.168.0.0/24"}, "pxe.subnet"),
    ({"domain": "bad domain"}, "pxe.domain"),
    ({"gateway": "gw"}, "pxe.gateway"),
    ({"inventory": {"dgx-001": ["5c:ff:35:a0:99:99"]}}, "pools[0].hosts[0].mac"),
    ({"inventory": {"dgx-999": ["5c:ff:35:a0:99:99"]}}, "pxe.inventory"),
    ({"inventory": {"dgx-001": ["5c:ff:35:a0:00:01", "5c:ff:35:a0:00:02"]}}, "pxe.inventory"),
])
def test_bad_settings_name_the_field(kw, field):
    plan, factory = _load()
    with pytest.raises(AifactoryError) as err:
        pxe_files(plan, _settings(**kw))
    assert str(err.value).startswith(f"{field}: ")
    assert "\n" not in str(err.value)


def test_host_without_ip_and_unsupported_os_are_refused(tmp_path):
    def drop_ip(doc):
        del doc["pools"][0]["hosts"][1]["ip"]

    plan, factory = _load(_spec_file(tmp_path, drop_ip))
    with pytest.raises(AifactoryError, match=r"^pools\[0\]\.hosts\[1\]\.ip: host dgx-002 needs an ip"):
        pxe_files(plan, _settings())

    def debian(doc):
        doc["software"]["os"] = "debian-12"

    plan, factory = _load(_spec_file(tmp_path, debian))
    with pytest.raises(AifactoryError, match=r"^software\.os: .*debian-12"):
        pxe_files(plan, _settings())


def test_ubuntu_24_04_uses_the_nocloud_data_source(tmp_path):
    def noble(doc):
        doc["software"]["os"] = "ubuntu-24.04"

    plan, factory = _load(_spec_file(tmp_path, noble))
    script = pxe_files(plan, _settings())["http/ipxe/5c-ff-35-a0-00-04.ipxe"]
    assert "ubuntu-24.04.3-live-server-amd64.iso" in script and "ds=nocloud;s=" in script


# -- the command -------------------------------------------------------------------------------------

def test_cli_renders_and_reports(tmp_path):
    key = tmp_path / "id_ed25519.pub"
    key.write_text(KEY + "\n")
    out = tmp_path / "pxe"
    result = CliRunner().invoke(app, ["pxe", str(EXAMPLE), "--out", str(out), "--server-ip", "10.20.0.2",
                                      "--ssh-key", str(key), "--gateway", "10.20.0.1"])
    assert result.exit_code == 0, result.output
    assert "18 files" in result.output and "4 hosts" in result.output
    assert "dhcp-option=option:router,10.20.0.1" in (out / "dnsmasq.conf").read_text()


def test_cli_bad_input_is_one_line_without_traceback(tmp_path):
    key = tmp_path / "id.pub"
    key.write_text("not a key\n")
    proc = subprocess.run([str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "aifactory"), "pxe",
                           str(EXAMPLE), "--out", str(tmp_path / "o"), "--server-ip", "10.20.0.2",
                           "--ssh-key", str(key)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("aifactory: pxe.ssh_public_keys[0]: not a single-line OpenSSH public key "
                                   "(ssh-ed25519 AAAA... comment); private keys are refused")
    assert not (tmp_path / "o").exists()
