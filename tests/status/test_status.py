"""`aifactory status`: recorded Slurm JSON, a fake Prometheus, hostile answers, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aifactory import plan as planning
from aifactory import status
from aifactory.errors import AifactoryError
from aifactory.status import prometheus as prom
from aifactory.status import slurm

DATA = Path(__file__).parent / "data"
SLURM_2205 = DATA / "sinfo-22.05.8-debian12.json"
SLURM_2411 = DATA / "scontrol-24.11-nodes.json"
FACTORY = """\
name: demo
sites:
  - {name: dc1, provider: onprem}
pools:
  - {name: gpu, site: dc1, provider: onprem, system: dgx-h100, nodes: 4}
"""


@pytest.fixture(scope="module")
def factory(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("status") / "factory.yaml"
    path.write_text(FACTORY)
    return path


@pytest.fixture(scope="module")
def demo_plan(factory):
    return planning.load(factory)


def cli(*args, input=None):
    return subprocess.run([sys.executable, "-m", "aifactory", "status", *map(str, args)], capture_output=True,
                          text=True, input=input, timeout=120)


# -- Slurm JSON ---------------------------------------------------------------------------------

def test_recorded_22_05_sample_drain_and_down():
    nodes = slurm.parse(SLURM_2205.read_text())
    assert nodes.version == "22.05.8"
    assert nodes.nodes["gpu-0002"].label == "UNKNOWN+DRAIN+NOT_RESPONDING"
    assert nodes.nodes["gpu-0002"].reason == "xid 79: GPU fell off the bus"
    assert nodes.nodes["gpu-0003"].state == "DOWN" and not nodes.nodes["gpu-0003"].healthy
    assert not nodes.nodes["gpu-0001"].responding


def test_24_11_sample_state_array():
    nodes = slurm.parse(SLURM_2411.read_text())
    assert nodes.version == "24.11.1"
    assert nodes.nodes["gpu-0001"].healthy and nodes.nodes["gpu-0004"].label == "ALLOCATED"
    assert nodes.nodes["gpu-0002"].label == "IDLE+DRAIN" and not nodes.nodes["gpu-0002"].healthy
    assert nodes.nodes["gpu-0002"].reason.startswith("Xid 79")
    assert nodes.nodes["gpu-0003"].label == "DOWN+NOT_RESPONDING"


def test_hostile_slurm_entries_are_left_out_and_reasons_cut():
    doc = {"nodes": [
        {"name": "gpu-0001\nFAKE ok", "state": ["IDLE"]},
        {"name": "{{ lookup('pipe','id') }}", "state": ["IDLE"]},
        {"name": "gpu-0002", "state": ["IDLE; rm -rf /"]},
        {"name": "gpu-0003", "state": ["IDLE", "DRAIN"], "reason": "a\nb\x1b[31m" + "x" * 10_000},
        "not an object",
    ]}
    nodes = slurm.parse(json.dumps(doc))
    assert list(nodes.nodes) == ["gpu-0003"]
    assert len(nodes.refused) == 4 and all("\n" not in r for r in nodes.refused)
    reason = nodes.nodes["gpu-0003"].reason
    assert len(reason) == slurm.MAX_REASON and "\n" not in reason and "\x1b" not in reason


@pytest.mark.parametrize("text", ['[]', '{"nodes": 1}', '{"nodes": [], "errors": [{"description": "no ctld"}]}',
                                  '{"nodes": [' + "[" * 100 + "]" * 100 + "]}", "not json"])
def test_malformed_slurm_documents_are_errors(text):
    with pytest.raises(AifactoryError):
        slurm.parse(text)


# -- a fake Prometheus ---------------------------------------------------------------------------

class FakePrometheus:
    """An HTTP server on 127.0.0.1 answering /api/v1/query from a table of expression -> body."""

    def __init__(self, answers: dict[str, object]):
        self.answers = answers
        self.queries: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                expr = urllib.parse.parse_qs(url.query).get("query", [""])[0]
                fake.queries.append(expr)
                body = fake.answers.get(expr, vector([]))
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(200 if url.path == "/api/v1/query" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def vector(series: list[tuple[dict, float]], when: float = 1_800_000_000.0) -> dict:
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": m, "value": [when, str(v)]} for m, v in series]}}


def healthy_answers(plan, nodes=("gpu-0001", "gpu-0002", "gpu-0003", "gpu-0004")) -> dict:
    digest = plan.software.digest
    return {
        "up": vector([({"job": f"{j}-gpu", "node": n, "pool": "gpu"}, 1) for n in nodes for j in ("node", "dcgm")]),
        "aifactory_lock_info": vector([({"node": n, "digest": digest}, 1) for n in nodes]),
        prom.QUERIES["xid"]: vector([({"node": n}, 0) for n in nodes]),
        prom.QUERIES["gate_ok"]: vector([({"node": n}, 1) for n in nodes]),
        prom.QUERIES["gate_time"]: vector([({"node": n}, 1_800_000_000.0 - 7200) for n in nodes]),
    }


@pytest.fixture
def fake():
    servers = []

    def start(answers):
        servers.append(FakePrometheus(answers))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_all_healthy_exits_0(factory, demo_plan, fake):
    server = fake(healthy_answers(demo_plan))
    done = cli(factory, "--prometheus", server.url, "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] and data["lock_digest"] == demo_plan.software.digest
    assert data["pools"] == [{"pool": "gpu", "nodes": 4, "ok": 4, "provisioned": 4, "slurm_serving": 0,
                              "lock_match": 4, "xid_errors": 0, "problems": 0}]
    assert data["nodes"][0] == {"pool": "gpu", "node": "gpu-0001", "ok": True, "provisioned": True,
                                "slurm_state": None, "slurm_ok": None, "drain_reason": None, "exporter_up": True,
                                "lock": "match", "lock_digest": None, "xid_errors": 0, "health_gate_ok": True,
                                "health_gate_age_s": 7200, "problems": []}
    assert set(server.queries) == set(prom.QUERIES.values())


def test_drift_xid_gate_and_missing_node_exit_3(factory, demo_plan, fake):
    answers = healthy_answers(demo_plan, nodes=("gpu-0001", "gpu-0002", "gpu-0003"))
    answers["aifactory_lock_info"] = vector([({"node": "gpu-0001", "digest": demo_plan.software.digest}, 1),
                                             ({"node": "gpu-0002", "digest": "0" * 64}, 1)])
    answers[prom.QUERIES["xid"]] = vector([({"node": "gpu-0003"}, 79)])
    answers[prom.QUERIES["gate_ok"]] = vector([({"node": "gpu-0003"}, 0)])
    server = fake(answers)
    done = cli(factory, "--prometheus", server.url, "-f", "json")
    assert done.returncode == 3, done.stderr
    nodes = {n["node"]: n for n in json.loads(done.stdout)["nodes"]}
    assert nodes["gpu-0001"]["ok"]
    assert nodes["gpu-0002"]["lock"] == "drift" and nodes["gpu-0002"]["lock_digest"] == "000000000000"
    assert nodes["gpu-0003"]["lock"] == "missing" and nodes["gpu-0003"]["xid_errors"] == 79
    assert "failed its last health gate" in nodes["gpu-0003"]["problems"]
    assert nodes["gpu-0004"]["provisioned"] is False and nodes["gpu-0004"]["exporter_up"] is None


def test_slurm_file_and_stdin_table_and_markdown(factory, demo_plan, fake):
    done = cli(factory, "--slurm-json", SLURM_2411)
    assert done.returncode == 3
    assert "IDLE+DRAIN" in done.stdout and "Xid 79 on GPU 3" in done.stdout and "DOWN+NOT_RESPONDING" in done.stdout
    piped = cli(factory, "--slurm-json", "-", "-f", "markdown", input=SLURM_2411.read_text())
    assert piped.returncode == 3 and "| gpu | gpu-0002 |" in piped.stdout
    data = json.loads(cli(factory, "--slurm-json", SLURM_2411, "-f", "json").stdout)
    assert [p["slurm_serving"] for p in data["pools"]] == [2]
    assert data["sources"]["slurm"] == str(SLURM_2411)


def test_hostile_prometheus_labels_are_not_shown(factory, demo_plan, fake):
    answers = healthy_answers(demo_plan)
    answers["up"]["data"]["result"].append({"metric": {"job": "node-gpu", "node": "gpu-0009\n| x | {{ 7*7 }}"},
                                            "value": [1.0, "1"]})
    answers["aifactory_lock_info"]["data"]["result"].append(
        {"metric": {"node": "gpu-0001", "digest": "{{ lookup('pipe', 'id') }}"}, "value": [1.0, "1"]})
    server = fake(answers)
    for fmt in ("table", "markdown", "json"):
        done = cli(factory, "--prometheus", server.url, "-f", fmt)
        assert done.returncode == 3
        assert "{{" not in done.stdout and "gpu-0009" not in done.stdout
    data = json.loads(done.stdout)
    assert data["nodes"][0]["lock"] == "drift" and "invalid" in data["nodes"][0]["lock_digest"]
    assert data["refused"] == ["Prometheus: 1 series without a host name in their node label"]


def test_huge_or_malformed_prometheus_answers_are_errors(demo_plan, fake):
    server = fake({"up": b"{" + b" " * (prom.MAX_BYTES + 10) + b"}"})
    with pytest.raises(AifactoryError, match="larger than"):
        prom.read(server.url)
    for body in (b"<html>", {"status": "error", "error": "bad\nquery"}, {"status": "success", "data": {
            "resultType": "matrix", "result": []}}, vector([({"node": "gpu-0001"}, "1e400x")])):
        server.answers["up"] = body
        with pytest.raises(AifactoryError) as exc:
            prom.read(server.url)
        assert "\n" not in str(exc.value)


def test_unreachable_prometheus_and_bad_urls_exit_1(factory):
    done = cli(factory, "--prometheus", "http://127.0.0.1:9")
    assert done.returncode == 1 and "Prometheus" in done.stderr and "Traceback" not in done.stderr
    for url in ("file:///etc/passwd", "ftp://x", "http://"):
        done = cli(factory, "--prometheus", url)
        assert done.returncode == 1 and "--prometheus" in done.stderr


def test_plan_json_input_and_oversize_slurm_file(factory, tmp_path):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(subprocess.run([sys.executable, "-m", "aifactory", "plan", factory, "-f", "json"],
                                        capture_output=True, text=True, check=True).stdout)
    done = cli(plan_file, "--slurm-json", SLURM_2205, "-f", "json")
    assert done.returncode == 3
    assert json.loads(done.stdout)["nodes"][1]["drain_reason"] == "xid 79: GPU fell off the bus"
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(slurm.MAX_BYTES + 1)
    done = cli(factory, "--slurm-json", big)
    assert done.returncode == 1 and "larger than" in done.stderr


def test_no_source_lists_the_plan_and_exits_0(demo_plan):
    result = status.collect(demo_plan)
    assert result.ok and [n.provisioned for n in result.nodes] == [None] * 4
    assert "4 planned nodes, 0 with problems" in status.summary(result)


def test_lock_digest_is_stable_and_moves_with_the_lock(demo_plan):
    digest = demo_plan.software.digest
    assert len(digest) == 64 and digest == demo_plan.software.digest
    moved = demo_plan.software.model_copy(update={"nccl": "2.99.1-1"})
    assert moved.digest != digest


def test_textfile_digests():
    d = "a" * 64
    text = f'# HELP x\naifactory_lock_info{{digest="{d}"}} 1\naifactory_lock_info{{digest="zz"}} 1\n'
    assert prom.textfile_digests(text) == {d, "invalid"}
