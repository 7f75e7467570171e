"""The real sushy-tools Redfish emulator (fake driver), served in-process on a loopback port.

Usage from any test::

    from tests.redfish_emulator import emulator  # noqa: F401  (the pytest fixture)

    def test_x(emulator):
        bmc = emulator.start(systems=[fake_system("node-1", mac="aa:bb:cc:00:00:01")])
        ... bmc.url, bmc.system_path("node-1"), bmc.power_state("node-1") ...

Faults are injected in front of the unmodified emulator app:

* ``bmc.fail_next(n, status=503)``  — the next n requests get an HTTP 5xx;
* ``bmc.swallow_power_actions = True`` — Reset actions answer 204 but do nothing
  (a node that never reaches the requested power state);
* ``start(credentials=(user, password))`` — HTTP basic auth through the emulator's own
  htpasswd (bcrypt) middleware, so wrong credentials get a real 401;
* :func:`closed_port` — an address where nothing listens (an unreachable BMC).

sushy-tools keeps one Flask app per process with a memoized systems driver, so one
configuration is active at a time: :meth:`EmulatorFactory.start` resets it and points its
state (sqlite, used by the fake driver) at the test's own temporary folder, which keeps
parallel pytest-xdist workers apart.
"""

from __future__ import annotations

import json
import socket
import threading
import types
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import bcrypt
import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

_LOCK = threading.Lock()  # one active emulator configuration per process


def fake_system(name: str, mac: Optional[str] = None, power_state: str = "Off", uuid: Optional[str] = None) -> dict:
    """One fake-driver system (the emulator's own record format)."""
    return {
        "uuid": uuid or str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{name}.aifactory.test")),
        "name": name,
        "power_state": power_state,
        "external_notifier": False,
        "nics": [{"mac": mac or "52:54:00:00:00:01", "ip": "192.0.2.10"}],
    }


def closed_port() -> int:
    """A loopback port with nothing listening on it: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # keep test output readable
        pass


class _Faults:
    """WSGI middleware in front of the emulator: records requests and injects faults."""

    def __init__(self, app) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.fail_remaining = 0
        self.fail_status = 503
        self.swallow_power_actions = False
        self.requests: list[tuple[str, str]] = []
        self.headers: list[dict] = []

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self.lock:
            self.requests.append((method, path))
            self.headers.append({k: v for k, v in environ.items() if k.startswith("HTTP_")})
            fail = self.fail_remaining > 0
            if fail:
                self.fail_remaining -= 1
        if fail:
            body = json.dumps({"error": {"code": "Base.1.0.InternalError",
                                         "message": "injected server fault"}}).encode()
            start_response(f"{self.fail_status} Injected", [("Content-Type", "application/json"),
                                                             ("Content-Length", str(len(body)))])
            return [body]
        if self.swallow_power_actions and method == "POST" and path.endswith("/Actions/ComputerSystem.Reset"):
            start_response("204 No Content", [])
            return [b""]
        return self.app(environ, start_response)


@dataclass
class Emulator:
    """A running emulator: its URL, its systems and the fault switches."""

    url: str
    systems: list[dict]
    faults: _Faults
    _server: object = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def uuid(self, name: str) -> str:
        return next(s["uuid"] for s in self.systems if s["name"] == name)

    def system_path(self, name: str) -> str:
        return f"/redfish/v1/Systems/{self.uuid(name)}"

    def power_state(self, name: str) -> str:
        from sushy_tools.emulator import main

        return main.app.systems.get_power_state(self.uuid(name))

    def boot_device(self, name: str) -> str:
        from sushy_tools.emulator import main

        return main.app.systems.get_boot_device(self.uuid(name))

    def fail_next(self, count: int, status: int = 503) -> None:
        with self.faults.lock:
            self.faults.fail_remaining, self.faults.fail_status = count, status

    @property
    def swallow_power_actions(self) -> bool:
        return self.faults.swallow_power_actions

    @swallow_power_actions.setter
    def swallow_power_actions(self, value: bool) -> None:
        self.faults.swallow_power_actions = value

    @property
    def requests(self) -> list[tuple[str, str]]:
        return list(self.faults.requests)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class EmulatorFactory:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp
        self.monkeypatch = monkeypatch
        self.running: list[Emulator] = []

    def start(self, systems: list[dict], credentials: Optional[tuple[str, str]] = None,
              power_delay_s: int = 0) -> Emulator:
        """Serve ``systems`` on 127.0.0.1:<free port>.

        ``power_delay_s``: the fake driver applies a power change 1 to 11 s (random) after the
        request, like real hardware; tests pin it (0 = at the next read) to stay fast and exact.
        """
        from sushy_tools.emulator import main
        from sushy_tools.emulator.resources.systems import fakedriver

        state = self.tmp / f"sushy-state-{len(self.running)}"
        state.mkdir(parents=True, exist_ok=True)
        main.app.config.update({
            "SUSHY_EMULATOR_FAKE_DRIVER": True,
            "SUSHY_EMULATOR_FAKE_SYSTEMS": systems,
            "SUSHY_EMULATOR_STATE_DIR": str(state),
        })
        main.app._cache = {}  # drop the memoized drivers of a previous test (sushy_tools memoize)
        self.monkeypatch.setattr(fakedriver, "random", types.SimpleNamespace(randint=lambda a, b: power_delay_s))

        app = main.app.wsgi_app
        if credentials:
            user, password = credentials
            htpasswd = state / "htpasswd"
            digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            htpasswd.write_text(f"{user}:{digest}\n")
            htpasswd.chmod(0o600)
            app = main.RedfishAuthMiddleware(app, str(htpasswd))
        # Outermost, like a failing BMC web server or proxy: faults hit before authentication.
        faults = _Faults(app)
        wsgi = faults

        # main.app.wsgi_app is Flask's own entry (it sets up the request context), so the
        # middlewares wrap it exactly as the emulator's own auth middleware does.
        server = make_server("127.0.0.1", 0, wsgi, threaded=True, request_handler=_Quiet)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="sushy-emulator", daemon=True)
        thread.start()
        emu = Emulator(url=f"http://127.0.0.1:{server.server_port}", systems=systems, faults=faults,
                       _server=server, _thread=thread)
        self.running.append(emu)
        return emu

    def stop(self) -> None:
        for emu in self.running:
            emu.stop()


@pytest.fixture
def emulator(tmp_path, monkeypatch):
    """Factory fixture: ``emulator.start(systems, credentials=None, power_delay_s=0)``."""
    with _LOCK:
        factory = EmulatorFactory(tmp_path, monkeypatch)
        try:
            yield factory
        finally:
            factory.stop()
