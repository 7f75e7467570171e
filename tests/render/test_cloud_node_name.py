"""The boot side of node names: the program cloud-init writes on AWS, GCP and OCI nodes, run for real
(Python in isolated mode: the standard library only) against a fake metadata service on 127.0.0.1
that holds the claim as each cloud serves it, with the host-name command replaced by a recorder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from aifactory.render import cloudinit
from tests.inventory import names_plan

HOSTILE = ["{{ lookup('pipe', 'touch /tmp/x') }}", "train-0001; touch /tmp/x", "train-0001\n", "infer-a-0001",
           "train-001", "train-0000", "train-00001", "TRAIN-0001", "train-٠٠٠١", ""]


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    root = tmp_path_factory.mktemp("plans")
    return {p: names_plan.plan(root, p) for p in ("aws", "gcp", "oci")}


def _user_data(plan, pool="train") -> dict:
    (found,) = [p for p in plan.pools if p.name == pool]
    text = cloudinit.user_data_for(plan, found)
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def _files(config) -> dict:
    return {f["path"]: f for f in config["write_files"]}


class Metadata:
    """One cloud's metadata service: the claim (None: not yet) where that cloud serves it."""

    def __init__(self, provider: str):
        self.provider, self.claim, self.requests = provider, None, []

    def answer(self, method, path, headers) -> tuple[int, bytes]:
        self.requests.append((method, path))
        if self.provider == "aws":
            if method == "PUT" and path == "/latest/api/token":
                return (200, b"token-1") if headers.get("X-aws-ec2-metadata-token-ttl-seconds") else (400, b"")
            if method == "GET" and path == "/latest/meta-data/tags/instance/aifactory:node":
                if headers.get("X-aws-ec2-metadata-token") != "token-1":
                    return 401, b""  # IMDSv2 only, as the launch template requires
                return (404, b"") if self.claim is None else (200, self.claim.encode())
        gcp_path = "/computeMetadata/v1/instance/attributes/aifactory-node"
        if self.provider == "gcp" and method == "GET" and path == gcp_path:
            if headers.get("Metadata-Flavor") != "Google":
                return 403, b""
            return (404, b"") if self.claim is None else (200, self.claim.encode())
        if self.provider == "oci" and method == "GET" and path == "/opc/v2/instance/":
            if headers.get("Authorization") != "Bearer Oracle":
                return 401, b""
            tags = {"aifactory-pool": "train"} if self.claim is None else {"aifactory-pool": "train",
                                                                          "aifactory-node": self.claim}
            return 200, json.dumps({"id": "ocid1.instance.oc1.iad.x", "freeformTags": tags}).encode()
        return 404, b""


@pytest.fixture
def serve():
    servers = []

    def start(metadata: Metadata) -> str:
        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                status, body = metadata.answer(self.command, self.path, self.headers)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = _any

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _install(config, tmp_path) -> tuple[list, Path, Path]:
    """The program and its data as cloud-init writes them; the command line the test runs."""
    files = _files(config)
    program = tmp_path / "aifactory-node-name"
    program.write_text(files[cloudinit.NODE_NAME_PROGRAM]["content"])
    data = tmp_path / "node-name.json"
    data.write_text(files[cloudinit.NODE_NAME_CONFIG]["content"])
    recorder = tmp_path / "hostnamectl"
    recorded = tmp_path / "hostname-calls"
    recorder.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {recorded}\n")
    recorder.chmod(0o755)
    marker = tmp_path / "run" / "aifactory" / "node-name"
    return ([sys.executable, "-I", "-S", str(program), "--config", str(data), "--hostname-command", str(recorder),
             "--marker", str(marker), "--interval", "0.1"], recorded, marker)


@pytest.mark.parametrize("provider", ["aws", "gcp", "oci"])
def test_cloud_node_waits_for_its_claim_then_takes_the_name(provider, plans, serve, tmp_path):
    metadata = Metadata(provider)
    url = serve(metadata)
    command, recorded, marker = _install(_user_data(plans[provider]), tmp_path)
    run = subprocess.Popen([*command, "--metadata-url", url, "--timeout", "30"], stderr=subprocess.PIPE, text=True)
    try:
        # It asks, hears there is no claim yet, and keeps asking.
        while len(metadata.requests) < 6 and run.poll() is None:
            threading.Event().wait(0.05)
        assert run.poll() is None and not recorded.exists()
        metadata.claim = "train-0002"  # the controller's --assign-names
        _, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    assert recorded.read_text() == "set-hostname\ntrain-0002\n"
    assert marker.read_text() == "train-0002\n"
    assert "no name claimed yet; waiting" in err and "this node is train-0002" in err


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("provider", ["aws", "oci"])
def test_cloud_node_refuses_a_value_that_is_no_planned_name_of_its_pool(provider, value, plans, serve, tmp_path):
    metadata = Metadata(provider)
    metadata.claim = value
    command, recorded, marker = _install(_user_data(plans[provider]), tmp_path)
    run = subprocess.run([*command, "--metadata-url", serve(metadata), "--timeout", "0.5"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode != 0
    assert not recorded.exists() and not marker.exists()
    assert "not a planned name of pool train; refused" in run.stderr and "gave up after" in run.stderr
    assert "touch" not in run.stderr and "lookup" not in run.stderr  # the value is never echoed


def test_cloud_node_without_a_metadata_service_gives_up_at_its_deadline(plans, tmp_path):
    command, recorded, _ = _install(_user_data(plans["gcp"]), tmp_path)
    run = subprocess.run([*command, "--metadata-url", "http://127.0.0.1:9", "--timeout", "0.5"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode != 0 and not recorded.exists()
    assert "metadata service: " in run.stderr and "Traceback" not in run.stderr


def test_cloud_node_name_data_units_and_first_boot_commands(plans):
    config = _user_data(plans["aws"])
    files = _files(config)
    assert json.loads(files[cloudinit.NODE_NAME_CONFIG]["content"]) == {"provider": "aws", "pool": "train", "width": 4}
    assert files[cloudinit.NODE_NAME_PROGRAM]["permissions"] == "0755"
    unit = files[f"/etc/systemd/system/{cloudinit.NODE_NAME_UNIT}"]["content"]
    assert ("ExecStart=/usr/bin/python3 /usr/local/sbin/aifactory-node-name --config /etc/aifactory/node-name.json"
            in unit)
    assert "Before=slurmd.service" in unit and "WantedBy=multi-user.target" in unit
    drop_in = files["/etc/systemd/system/slurmd.service.d/aifactory-node-name.conf"]["content"]
    assert "Requires=aifactory-node-name.service" in drop_in and "After=aifactory-node-name.service" in drop_in
    # The configless drop-in of the slurm_client role clears ConditionPathExists, so none is used.
    assert "ConditionPathExists" not in drop_in.split("[Unit]")[1]
    assert config["runcmd"][:3] == [["systemctl", "daemon-reload"], ["systemctl", "enable", cloudinit.NODE_NAME_UNIT],
                                    ["systemctl", "start", "--no-block", cloudinit.NODE_NAME_UNIT]]
    # Every value is fixed text or the pool's own data: no cloud-read value reaches a command.
    assert all(isinstance(word, str) and "{" not in word for cmd in config["runcmd"] for word in cmd)


def test_cloud_node_name_systemd_units_verify(plans, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    files = _files(_user_data(plans["aws"]))
    unit = tmp_path / cloudinit.NODE_NAME_UNIT
    unit.write_text(files[f"/etc/systemd/system/{cloudinit.NODE_NAME_UNIT}"]["content"].replace(
        "/usr/local/sbin/aifactory-node-name", str(tmp_path / "program")))
    (tmp_path / "program").write_text("")
    run = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (run.stdout + run.stderr).splitlines() if cloudinit.NODE_NAME_UNIT in line]
    assert not problems, run.stdout + run.stderr


def test_cloud_pools_without_a_place_for_claims_or_slurm_get_no_such_parts(tmp_path):
    """Azure pools (Uniform scale sets) get no wait; a Kubernetes pool no slurmd drop-in."""
    from aifactory import plan as planning
    from aifactory import spec

    from tests.render.helpers import STACKS

    plan = planning.build(spec.load(STACKS / "multicloud" / "factory.yaml"))
    assert cloudinit.NODE_NAME_CONFIG not in _files(_user_data(plan, "azure")) and "runcmd" not in _user_data(
        plan, "azure")
    kube = names_plan.SPEC.format(provider="gcp", **names_plan.CLOUDS["gcp"]).replace(
        "nodes: 1, fabric: fab,", "nodes: 1, fabric: fab, scheduler: kubernetes,")
    (tmp_path / "f.yaml").write_text(kube)
    kplan = planning.build(spec.load(tmp_path / "f.yaml"))
    files = _files(_user_data(kplan, "infer-a"))
    assert cloudinit.NODE_NAME_CONFIG in files
    assert not any("slurmd.service.d" in path for path in files)


def test_cloud_aws_user_data_stays_within_the_16_kib_ec2_takes(plans):
    """EC2 takes at most 16 KB of user data before base64
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html, checked 2026-12-03)."""
    (pool,) = [p for p in plans["aws"].pools if p.name == "train"]
    assert len(cloudinit.user_data_for(plans["aws"], pool).encode()) < 16 * 1024
