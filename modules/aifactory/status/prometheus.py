"""What the factory's Prometheus knows of each node, through its HTTP API's instant queries.

The rendered scrape configuration (:mod:`aifactory.render.monitoring`) gives every target a
``node`` label with the planned host name; every query here is grouped by it:

* ``up`` of the ``node-<pool>`` and ``dcgm-<pool>`` jobs: whether the exporters answer;
* ``aifactory_lock_info{digest="<sha256>"} 1``: the software lock the node was configured from,
  which the node_exporter role writes for the textfile collector;
* ``DCGM_FI_DEV_XID_ERRORS``: the last XID error of each GPU (dcgm-exporter), above 0 after one;
* ``aifactory_health_gate_ok`` / ``aifactory_health_gate_timestamp_seconds``: the last health gate,
  where a node reports one.

The answer is untrusted: read with a timeout and a size limit, parsed strictly, label values of
unexpected shape dropped.
"""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import AifactoryError
from ..files import parse_json
from .slurm import NODE_NAME, one_line

MAX_BYTES = 32 * 1024 * 1024
MAX_SERIES = 1_000_000
TIMEOUT = 15.0
DIGEST = re.compile(r"[0-9a-f]{64}")

QUERIES = {
    "up": "up",
    "lock": "aifactory_lock_info",
    "xid": "max by (node) (DCGM_FI_DEV_XID_ERRORS)",
    "gate_ok": "min by (node) (aifactory_health_gate_ok)",
    "gate_time": "max by (node) (aifactory_health_gate_timestamp_seconds)",
}


@dataclass
class NodeMetrics:
    node_up: Optional[bool] = None  # node_exporter answers
    dcgm_up: Optional[bool] = None  # dcgm-exporter answers
    digests: set[str] = field(default_factory=set)
    xid: Optional[int] = None
    gate_ok: Optional[bool] = None
    gate_time: Optional[float] = None


@dataclass
class PrometheusView:
    url: str
    nodes: dict[str, NodeMetrics] = field(default_factory=dict)
    refused: int = 0  # series left out: no node label, or one that is not a host name
    time: float = 0.0  # the server's evaluation time of the last query


def check_url(url: str) -> str:
    """The base URL, without a trailing slash; http or https with a host, nothing else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise AifactoryError(f"--prometheus {one_line(url, 100)!r}: expected http(s)://HOST[:PORT][/PATH]")
    return url.rstrip("/")


def query(base: str, expr: str, timeout: float = TIMEOUT, max_bytes: int = MAX_BYTES) -> tuple[list, float]:
    """``(series, time)`` of one instant query: each series ``(labels, value)``."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        # Redirects are not followed to another scheme by urllib; no credentials are sent.
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (checked scheme)
            raw = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise AifactoryError(f"Prometheus {base}: HTTP {exc.code} for {expr!r}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AifactoryError(f"Prometheus {base}: {one_line(reason)}") from None
    if len(raw) > max_bytes:
        raise AifactoryError(f"Prometheus {base}: the answer to {expr!r} is larger than {max_bytes // (1024 * 1024)} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AifactoryError(f"Prometheus {base}: the answer to {expr!r} is not UTF-8") from None
    return parse_vector(parse_json(text, f"Prometheus {base}"), f"Prometheus {base}: {expr!r}")


def parse_vector(data: Any, name: str) -> tuple[list[tuple[dict[str, str], float]], float]:
    """The series of an instant-vector answer; an error for anything else."""
    if not isinstance(data, dict) or data.get("status") != "success":
        error = data.get("error") if isinstance(data, dict) else None
        raise AifactoryError(f"{name}: query failed" + (f": {one_line(error)}" if error else ""))
    body = data.get("data")
    if not isinstance(body, dict) or body.get("resultType") != "vector" or not isinstance(body.get("result"), list):
        raise AifactoryError(f"{name}: not an instant vector")
    if len(body["result"]) > MAX_SERIES:
        raise AifactoryError(f"{name}: more than {MAX_SERIES:,} series")
    out, when = [], 0.0
    for item in body["result"]:
        if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
            raise AifactoryError(f"{name}: a series without labels")
        labels = item["metric"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise AifactoryError(f"{name}: a label that is not a string")
        value = item.get("value")
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (int, float))
                and not isinstance(value[0], bool) and isinstance(value[1], str) and len(value[1]) <= 64):
            raise AifactoryError(f"{name}: a sample that is not [time, \"value\"]")
        try:
            number = float(value[1])
        except ValueError:
            raise AifactoryError(f"{name}: sample value {one_line(value[1], 64)!r} is not a number") from None
        when = max(when, float(value[0]))
        out.append((labels, number))
    return out, when


def read(url: str, timeout: float = TIMEOUT, max_bytes: int = MAX_BYTES) -> PrometheusView:
    """Every query of :data:`QUERIES`, per node."""
    base = check_url(url)
    view = PrometheusView(base)

    def series(key: str):
        found, when = query(base, QUERIES[key], timeout, max_bytes)
        view.time = max(view.time, when)
        for labels, value in found:
            node = labels.get("node", "")
            if not NODE_NAME.fullmatch(node):
                view.refused += 1
                continue
            yield labels, view.nodes.setdefault(node, NodeMetrics()), value

    for labels, m, value in series("up"):
        job = labels.get("job", "")
        if job.startswith("node-"):
            m.node_up = value == 1 if m.node_up is None else (m.node_up and value == 1)
        elif job.startswith("dcgm-"):
            m.dcgm_up = value == 1 if m.dcgm_up is None else (m.dcgm_up and value == 1)
    for labels, m, value in series("lock"):
        digest = labels.get("digest", "")
        if value == 1:
            m.digests.add(digest if DIGEST.fullmatch(digest) else "invalid")
    for _, m, value in series("xid"):
        if math.isfinite(value):
            m.xid = int(max(0.0, min(value, 2**31)))
    for _, m, value in series("gate_ok"):
        if math.isfinite(value):
            m.gate_ok = value == 1
    for _, m, value in series("gate_time"):
        if math.isfinite(value) and value > 0:
            m.gate_time = value
    return view


def textfile_digests(text: str) -> set[str]:
    """The digests of ``aifactory_lock_info`` lines of a textfile-collector file (what the
    node_exporter role writes), for readers without a Prometheus (the lab)."""
    found = set()
    for line in text.splitlines()[:1000]:
        m = re.fullmatch(r'aifactory_lock_info\{digest="([^"]{0,100})"\}\s+1', line.strip())
        if m:
            found.add(m.group(1) if DIGEST.fullmatch(m.group(1)) else "invalid")
    return found
