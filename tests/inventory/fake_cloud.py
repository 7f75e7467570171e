"""Recorded cloud API responses, served to the providers' real SDK clients.

The SDKs run their own request building, paging and deserialization against these: GCP's and
OCI's clients over real HTTP (a local server, reached through their endpoint override), Azure's
through a ``requests`` adapter under azure-core's own ``RequestsTransport`` (its bearer-token
policy refuses plain HTTP, so it keeps its https://management.azure.com URLs).

A route answers one page of a recorded listing: ``tests/inventory/data/<cloud>/<file>.json``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qsl, urlsplit

import requests
import urllib3

from tests import ansible_data

DATA = Path(__file__).resolve().parent / "data"
CANARY = Path("/tmp/aifactory-cloud-tag-canary")  # what the hostile tag values would create


def recorded(cloud: str, name: str):
    return json.loads((DATA / cloud / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class Reply:
    body: object
    status: int = 200
    headers: dict = field(default_factory=dict)


@dataclass
class Call:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes = b""  # what a write sent (a handler reads it as api.calls[-1].body)


# (method, path, query) -> Reply, or None for 404.
Handler = Callable[[str, str, dict], Optional[Reply]]


@dataclass
class FakeApi:
    handler: Handler
    calls: list = field(default_factory=list)

    def answer(self, method: str, url: str, headers, body: bytes = b"") -> tuple[int, dict, bytes]:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.calls.append(Call(method, parts.path, query, {k.lower(): v for k, v in dict(headers).items()},
                               body or b""))
        reply = self.handler(method, parts.path, query)
        if reply is None:
            reply = Reply({"error": {"code": 404, "message": f"no recorded response for {parts.path}"}}, 404)
        body = json.dumps(reply.body).encode()
        return reply.status, {"Content-Type": "application/json", **reply.headers}, body

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]


@contextmanager
def serve(api: FakeApi):
    """``http://127.0.0.1:<port>`` answering from ``api`` for as long as the block runs."""

    class _Handler(BaseHTTPRequestHandler):
        def _any(self):
            length = int(self.headers.get("Content-Length") or 0)
            sent = self.rfile.read(length) if length else b""
            status, headers, body = api.answer(self.command, self.path, self.headers, sent)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _any

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Adapter(requests.adapters.BaseAdapter):
    """A ``requests`` transport adapter answering from ``api`` (no socket)."""

    def __init__(self, api: FakeApi):
        super().__init__()
        self.api = api

    def send(self, request, **kwargs):
        sent = request.body.encode() if isinstance(request.body, str) else request.body
        status, headers, body = self.api.answer(request.method, request.url, request.headers, sent)
        raw = urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers, status=status, preload_content=False,
                                   reason="OK" if status < 400 else "Error")
        return requests.adapters.HTTPAdapter().build_response(request, raw)

    def close(self):
        pass


def session(api: FakeApi) -> requests.Session:
    s = requests.Session()
    s.mount("https://", Adapter(api))
    s.mount("http://", Adapter(api))
    return s


def _script(inv: dict, tmp_path: Path) -> Path:
    data = tmp_path / "inventory.json"
    data.write_text(json.dumps(inv))
    script = tmp_path / "inventory.sh"
    script.write_text(f"#!/bin/sh\ncat {data}\n")
    script.chmod(0o755)
    return script


def ansible_inventory(inv: dict, tmp_path: Path) -> dict:
    """What ``ansible-inventory --list`` makes of ``inv`` given as an inventory script."""
    env = {**os.environ, "ANSIBLE_INVENTORY_ENABLED": "script"}
    listed = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i",
                             str(_script(inv, tmp_path)), "--list"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    return ansible_data.load_json(listed.stdout)


def ansible_debug(inv: dict, tmp_path: Path) -> str:
    """Run a debug task over ``inv`` (as an inventory script) that prints the hostile values; its output."""
    CANARY.unlink(missing_ok=True)
    env = {**os.environ, "ANSIBLE_INVENTORY_ENABLED": "script", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    used = subprocess.run([str(Path(sys.executable).parent / "ansible"), "all", "-i", str(_script(inv, tmp_path)),
                           "-c", "local", "-e", "ansible_host=127.0.0.1", "-m", "debug", "-a",
                           'msg="{{ aifactory_pool }} {{ aifactory_role }} {{ aifactory_site }}"'],
                          capture_output=True, text=True, env=env, timeout=120)
    assert used.returncode == 0, used.stdout + used.stderr
    return used.stdout
