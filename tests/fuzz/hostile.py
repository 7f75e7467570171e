"""Structure-aware mutations of every untrusted input a command reads, for the command fuzzing.

Inputs (all taken from the example stacks, so that many mutants stay close to valid and reach
deep code): ``factory.yaml``, ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` of a copied stack
folder, ``plan.json`` (``aifactory diff``), the node inventory JSON and the SSH key files of
``aifactory pxe``, and the PXE settings given on the command line.

Each strategy mixes

* structure-aware edits: a scalar replaced by a hostile value (:data:`PAYLOADS`: line breaks,
  Jinja expressions and statements, shell substitutions, ``../`` and absolute paths, control
  and line-separator characters, IPv6 scope ids, booleans where strings go, huge numbers,
  NaN/inf, very long strings, deep nesting), deleted keys, duplicated list items (duplicate
  host names, MACs and IPs), shared values dumped as YAML anchors and aliases, hosts added to
  pools that had none (to reach the PXE and IMEX code);
* byte-level edits of the dumped text (insertions, deletions, flips, invalid UTF-8).

Every payload that could run names :data:`harness.CANARY`, and every payload with a line break
is followed by :data:`harness.FORGED`, so the harness can tell when one ran or was echoed raw.
"""

from __future__ import annotations

import copy
import zlib
import json

import yaml
from hypothesis import strategies as st

from tests.fuzz import mutations
from tests.fuzz.harness import CANARY, CANARY_NAME, FORGED, REPO

C = str(CANARY)
N = CANARY_NAME  # for values that may not hold a '/' (IPv6 scope ids)
STACKS = sorted(p.parent for p in REPO.glob("stacks/*/factory.yaml"))
SPECS = {d.name: yaml.safe_load((d / "factory.yaml").read_text()) for d in STACKS}
SPEC_TEXTS = {d.name: (d / "factory.yaml").read_text() for d in STACKS}
PROJECTS = {d.name: (d / "Pulumi.yaml").read_text() for d in STACKS}
STACK_CONFIGS = {d.name: {p.name: p.read_text() for p in sorted(d.glob("Pulumi.*.yaml"))} for d in STACKS}

SERVER_IP = "10.20.0.2"
# A real ed25519 public key (its private half was never kept).
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDO93r15Ofq996yo2oa/atcq6BFEGR5IFQMJlETGu/KN fuzz@controller"

# Values aimed at whatever a field later reaches: a template, a shell, a path, a config line.
TEMPLATE_PAYLOADS = [
    f"{{{{ lookup('pipe','touch {C}') }}}}",
    f"{{{{lookup('pipe','touch {C}')}}}}",
    f"{{% set x = lookup('pipe','touch {C}') %}}",
    f"{{{{ cycler.__init__.__globals__.os.system('touch {C}') }}}}",
    f"{{%- for x in lookup('pipe','touch {C}') %}}{{% endfor %}}",
    f"fe80::1%{{{{lookup('pipe','touch {C}')}}}}",
    # ipaddress accepts any scope id without '/' or '%': these are valid addresses to it.
    f"fe80::1%{{{{lookup('pipe','touch {N}')}}}}",
    f"fe80::1%eth0\n- {{{{ lookup('pipe','touch {N}') }}}}",
    f"fe80::1%{{% set x = lookup('pipe','touch {N}') %}}",
    f"{{{{ lookup('pipe','touch {N}') }}}}",
]
SHELL_PAYLOADS = [
    f"$(touch {C})", f"`touch {C}`", f"x; touch {C}", f"x && touch {C} #", f"x|touch {C}",
    f"x\ntouch {C}", f"x\r\ntouch {C}", f"x\n{FORGED}", f"x\r{FORGED}", f"x\u2028{FORGED}",
    f"10.20.0.11\n{FORGED}: 1", f"fe80::1%eth0\n- {FORGED}", f"fe80::1%$(touch {N})", f"fe80::1%`touch {N}`",
    f"fe80::1%x;touch {N}",
]
PATH_PAYLOADS = ["../../victim", "../" * 12 + "etc/passwd", "/etc/passwd", "/dev/zero", "..", ".", "-rf", "--help",
                 "~/.ssh/id_rsa", "x/../../y", C]
CONTROL_PAYLOADS = ["a\x00b", "\x1b[2J\x1b[31mred", "a\x7fb", "a\x85b", "a\u2029b", "\ufeffname", "\u202eevil",
                    "a\tb", " lead", "trail ", "", " ", "ｇｐｕ", "gpu\u200b"]
ADDRESS_PAYLOADS = [
    "fe80::1%eth0", "fe80::1%25eth0", "::1", "::", "0.0.0.0", "127.0.0.1", "255.255.255.255", "224.0.0.1",
    "10.20.0.11", SERVER_IP, "10.20.0.11/24", "010.020.000.011", "10.20.0.11 ", "0x0a140b", "1e3", "2001:db8::1",
    "::ffff:10.20.0.11", "aa:bb:cc:dd:ee:ff\n", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "00:00:00:00:00:00",
    "5C:FF:35:A0:00:01", "5c-ff-35-a0-00-01", "5c:ff:35:a0:00:01\n", "5c:ff:35:a0:00:01 ",
]
STRING_PAYLOADS = TEMPLATE_PAYLOADS + SHELL_PAYLOADS + PATH_PAYLOADS + CONTROL_PAYLOADS + ADDRESS_PAYLOADS
ZONE_PAYLOADS = [p for p in TEMPLATE_PAYLOADS + SHELL_PAYLOADS if p.startswith("fe80::1%")]
# Per field name: the payloads aimed at what that field becomes.
TARGETS = {
    "ip": ADDRESS_PAYLOADS + ZONE_PAYLOADS * 3 + [True, False, 167772171, 10.2, None, "", f"10.20.0.11\n{FORGED}"],
    "mac": ADDRESS_PAYLOADS + [True, 0x5cff35a00001, "5c:ff:35:a0:00:01\n", f"5c:ff:35:a0:00:01\n{FORGED}"],
    "bmc": ADDRESS_PAYLOADS + TEMPLATE_PAYLOADS + SHELL_PAYLOADS + ["a" * 254, "-bmc", "bmc..x", True],
    "name": TEMPLATE_PAYLOADS + SHELL_PAYLOADS + PATH_PAYLOADS + CONTROL_PAYLOADS + ["default", "all", "a" * 64],
    "ssh_user": TEMPLATE_PAYLOADS + SHELL_PAYLOADS + ["root", "-oProxyCommand=x", "a" * 64],
    "admin_cidrs": [["0.0.0.0/0"], ["::/0"], ["fe80::/10%eth0"], [f"10.0.0.0/8\n{FORGED}"], "10.0.0.0/8", [True]],
    "description": TEMPLATE_PAYLOADS + SHELL_PAYLOADS + CONTROL_PAYLOADS,
    "region": TEMPLATE_PAYLOADS + SHELL_PAYLOADS + PATH_PAYLOADS,
    "zones": [[p] for p in TEMPLATE_PAYLOADS + SHELL_PAYLOADS + PATH_PAYLOADS[:4]],
    "reservation": TEMPLATE_PAYLOADS + SHELL_PAYLOADS + PATH_PAYLOADS,
    "system": PATH_PAYLOADS + TEMPLATE_PAYLOADS[:2], "switch": PATH_PAYLOADS + TEMPLATE_PAYLOADS[:2],
    "nccl": SHELL_PAYLOADS + ["-rf", "1.0; rm"], "dcgm_package": SHELL_PAYLOADS + ["x y"],
    "power_mw": [True, "1", float("nan"), float("inf"), 1e308, -1, 0, 100_000], "nodes": [True, 10**7, 0, -1, 1.5],
    # MIG profiles reach nvidia-smi's argv, a systemd unit and Slurm's Gres= lines; counts a GRES count.
    "mig": [{p: 1} for p in TEMPLATE_PAYLOADS[:2] + SHELL_PAYLOADS + PATH_PAYLOADS[:3] + CONTROL_PAYLOADS[:3]] + [
        {f"3g.40gb\n{FORGED}": 1}, {"3g.40gb,gpu:h100_sxm:99": 1}, {"3g.40gb": True}, {"3g.40gb": "2"},
        {"3g.40gb": 10**30}, {"3g.40gb": 1.5}, {"3g.40gb": -1}, {"8g.80gb": 1}, {"3g.40gb+me+me": 1},
        {"3g.40gb": 2, "1g.10gb": 7}, {f"{i}g.10gb": 1 for i in range(1, 8)} | {"1g.20gb": 1}, ["3g.40gb"],
        "3g.40gb", {"3g.40gb": None}, {"3G.40GB": 1}, {" 3g.40gb": 1}],
}
OTHER_PAYLOADS = [True, False, None, 0, -1, 1, 2**31, 2**63, 2**64, 10**30, -(10**30), 10**400, 1e308, -0.0, 0.5,
                  float("nan"), float("inf"), float("-inf"), [], {}, [None], {"": None}]
long_strings = st.builds(lambda c, n: c * n, st.sampled_from(["x", "a-", "9", "é", "\u2028", "{"]),
                         st.sampled_from([64, 254, 1000, 5000, 5000, 100_000]))
payloads = st.one_of(
    st.sampled_from(STRING_PAYLOADS),
    st.sampled_from(OTHER_PAYLOADS),
    long_strings,
    st.sampled_from(mutations.HOSTILE_STRINGS + mutations.PLAUSIBLE),
    st.text(max_size=24),
    st.integers(),
    st.floats(),
).map(copy.deepcopy)  # a fresh object each time: edits change values in place, and the constants must not change


def nested(depth: int, leaf=None):
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


values = st.one_of(
    payloads, payloads, payloads,
    st.builds(nested, st.integers(1, 80), payloads),
    st.lists(payloads, max_size=4),
    st.dictionaries(st.sampled_from(["name", "ip", "mac", "x", "", "a\nb", C]), payloads, max_size=3),
).map(copy.deepcopy)


# -- structured documents -------------------------------------------------------------------

# Walking and naming a spec's data: the same helpers the spec mutator uses.
_paths, _get, _names = mutations._paths, mutations._get, mutations._names


def _hosts_for(pool: dict, count: int, start: int = 1) -> list[dict]:
    base = 20 + 10 * (zlib.crc32(str(pool.get("name", "")).encode()) % 20)
    return [{"name": f"{pool.get('name', 'p')}-h{i:03d}"[:40], "mac": f"5c:ff:35:b{base % 10}:{i >> 8:02x}:{i & 255:02x}",
             "bmc": f"10.21.{base}.{i}", "ip": f"10.20.{base}.{i}"} for i in range(start, start + count)]


@st.composite
def edit(draw, data, allow_root: bool = True):
    """One structure-aware edit of ``data`` (in place where possible); returns the new document."""
    paths = [p for p in _paths(data) if p or allow_root]
    if not paths:
        return data
    path = draw(st.sampled_from(paths))
    target = _get(data, path)
    parent = _get(data, path[:-1]) if path else None
    op = draw(st.sampled_from(["payload"] * 2 + ["targeted"] * 4 + ["plausible"] * 3
                              + ["delete", "duplicate", "alias", "bool", "number", "nest", "hostile-key", "swap-type"]
                              + ["add-hosts"] * 2))
    if op == "targeted":
        targeted(draw, data)
        return data
    if not path:
        if isinstance(data, dict):
            data[draw(st.sampled_from(["x", "", "a\nb", C, "pools "]))] = draw(values)
            return data
        return draw(values)
    key = path[-1]
    if op == "delete":
        del parent[key]
    elif op == "duplicate" and isinstance(parent, list):
        # Duplicate host names, MACs, IPs; duplicate pools, sites, fabrics.
        parent.insert(draw(st.integers(0, len(parent))), copy.deepcopy(target))
    elif op == "duplicate" and isinstance(parent, dict) and isinstance(target, (str, int)):
        # The same value under a sibling's key: two hosts with one IP, or one MAC.
        siblings = [k for k in parent if k != key]
        if siblings:
            parent[draw(st.sampled_from(siblings))] = target
    elif op == "alias" and isinstance(target, (dict, list)):
        # One object in two places: yaml.safe_dump writes an anchor and an alias.
        holder = _get(data, path[:1]) if len(path) > 1 else data
        if isinstance(holder, dict):
            holder[draw(st.sampled_from(["shared", "pools", "sites", "extra"]))] = target
        elif isinstance(holder, list):
            holder.append(target)
    elif op == "bool":
        parent[key] = draw(st.booleans())
    elif op == "number":
        parent[key] = draw(st.sampled_from(OTHER_PAYLOADS[3:18]) | st.integers() | st.floats())
    elif op == "nest":
        parent[key] = nested(draw(st.integers(1, 120)), target if not isinstance(target, (dict, list)) else None)
    elif op == "hostile-key" and isinstance(target, dict):
        target[draw(st.sampled_from(STRING_PAYLOADS[:20] + ["ip", "mac", "hosts", "imex", "name "]))] = draw(values)
    elif op == "swap-type":
        parent[key] = draw(st.sampled_from([[target], {"value": target}, str(target), None]))
    elif op == "add-hosts":
        add_hosts(draw, data)
    elif op == "plausible":
        # A value of the right shape: most of these mutants pass the schema and reach the
        # planner, the renderers and the PXE writer, where the deeper checks live.
        if isinstance(target, bool) or target is None:
            parent[key] = draw(st.booleans())
        elif isinstance(target, int):
            parent[key] = draw(st.sampled_from([1, 2, 3, 4, 8, 16, 18, 36, 72, 127, 128, 1000]))
        elif isinstance(target, float):
            parent[key] = draw(st.sampled_from([0.05, 0.5, 1.0, 1.3, 2.0, 42.0, 140.0, 1000.0]))
        elif isinstance(target, str):
            parent[key] = draw(st.sampled_from(mutations.PLAUSIBLE + _names(data) + PLAUSIBLE_ADDRESSES))
        else:
            parent[key] = draw(payloads)
    else:
        parent[key] = draw(values)
    return data


def targeted(draw, data) -> None:
    """Put a payload made for its kind into a field that reaches a template, a shell, a hostname
    or a path (a random path would pick one of these in a few per cent of the cases)."""
    pools = data.get("pools") if isinstance(data, dict) else None
    if isinstance(pools, list) and pools and isinstance(pools[0], dict) and draw(st.integers(0, 9)) == 4:
        pools[0]["mig"] = {"3g.40gb": 2}  # no example stack has MIG: give the payloads a field to land in
    found = [p for p in _paths(data) if p and p[-1] in TARGETS]
    if not found or not any(p[-1] == "ip" for p in found):
        add_hosts(draw, data)
        found = [p for p in _paths(data) if p and p[-1] in TARGETS]
    if found:
        kind = draw(st.sampled_from(sorted({p[-1] for p in found})))  # ip as likely as name
        path = draw(st.sampled_from([p for p in found if p[-1] == kind]))
        _get(data, path[:-1])[path[-1]] = copy.deepcopy(draw(st.sampled_from(TARGETS[kind])))


PLAUSIBLE_ADDRESSES = ["10.20.0.11", "10.20.0.15", "10.20.1.11", "2001:db8::11", "5c:ff:35:a0:00:01",
                       "5c:ff:35:a0:00:09", "bmc-1.example", "dgx-001", "dgx-009"]


def add_hosts(draw, data) -> None:
    """Give an on-prem or lab pool declared hosts (an NVL72 pool gets whole racks of them)."""
    pools = data.get("pools") if isinstance(data, dict) else None
    pools = [p for p in pools if isinstance(p, dict)] if isinstance(pools, list) else []
    if not pools:
        return
    on_site = [p for p in pools if p.get("provider") == "onprem"]
    # Mostly pools that may have hosts; now and then another pool, which must be refused.
    if draw(st.integers(0, 9)) == 7:  # (not 0: hypothesis favours the simplest value)
        pool = draw(st.sampled_from(pools))
    elif on_site:
        pool = draw(st.sampled_from(on_site))
    else:
        return
    nodes = pool.get("nodes")
    nvl72 = str(pool.get("system", "")).startswith("gb")
    count = draw(st.sampled_from([18, 36] if nvl72 else [1, 2, 4])) if not isinstance(nodes, int) or isinstance(
        nodes, bool) else max(1, min(nodes, 36 if nvl72 else 8))
    pool["hosts"] = _hosts_for(pool, count)


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: the pure-Python emitter dominates the run


def dump(data, draw) -> str:
    try:
        return yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=draw(st.booleans()),
                         default_flow_style=draw(st.sampled_from([False, None])), width=10_000)
    except (yaml.YAMLError, ValueError, RecursionError):
        return json.dumps(data, default=str)  # JSON is YAML too


@st.composite
def byte_edits(draw, data: bytes) -> bytes:
    """One to three byte-level edits."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "flip", "insert-token"]))
        if op == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 16)):]
        elif op == "flip" and at < len(data):
            data = data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1:]
        else:
            data = data[:at] + draw(st.sampled_from([
                b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\r", b"\n", b"\n- ", b": ", b"{", b"[", b"&a ", b"*a",
                b"!!python/object/apply:os.system ['touch " + C.encode() + b"']", b"\xe2\x80\xa8", b"\t", b'"', b"#",
                b"{{ lookup('pipe','touch " + C.encode() + b"') }}", b"%{{ 7*7 }}", b"\n" + FORGED.encode()])) + data[at:]
    return data


@st.composite
def spec_mutant(draw, names=None, hosts: float = 0.0) -> tuple[str, bytes, object]:
    """(stack name, factory.yaml bytes, the data before byte edits): an example stack's spec after
    one to three edits, sometimes with byte-level edits on top; ``hosts``: chance that on-prem
    pools get declared hosts first."""
    name = draw(st.sampled_from(sorted(names or SPECS)))
    data = copy.deepcopy(SPECS[name])
    if hosts and draw(st.floats(0, 1)) < hosts:
        add_hosts(draw, data)
    kind = draw(st.sampled_from(["structured"] * 6 + ["bytes", "text"]))
    if kind == "text":
        return name, draw(mutations.raw()), SPECS[name]
    for _ in range(draw(st.integers(1, 3))):
        data = draw(edit(data))
    text = dump(data, draw).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        text = draw(byte_edits(text))
    return name, text, data


# Edits that keep a spec plausible, so that the mutant reaches the planner and the writers.
NUMBER_RANGES = {"nodes": [1, 2, 3, 8, 18, 36, 127, 200, "fill"], "power_mw": [0.05, 0.2, 1, 2.5, 40],
                 "pue": [1.0, 1.15, 1.5, 2.0], "rack_kw": [10, 25, 42, 140, 200], "rack_units": [42, 48],
                 "su_nodes": [1, 8, 32, 64]}
SOFTWARE = {"os": ["ubuntu-22.04", "ubuntu-24.04", "debian-12", "debian-13", "rhel-9"],
            "driver_branch": ["535", "570", "580"],
            "cuda": ["12.2", "12.8", "13.0"], "dcgm": [3, 4], "imex": [True, False], "open_kernel_modules": [True]}
OPTIONAL = {"description", "tags", "access", "admin_cidrs", "ssh_user", "fabric", "zones", "capacity", "region",
            "switch", "subnet_manager", "rail_optimized", "driver_branch", "cuda", "os", "power_mw", "pue", "rack_kw",
            "hosts", "software", "ip", "fabrics", "scheduler"}


def _bump(value: str, by: int) -> str:
    """Another address of the same kind: the last IPv4 octet or MAC byte moved by ``by``."""
    mac = value.count(":") == 5
    head, sep, last = value.rpartition(":" if mac else ".")
    try:
        return f"{head}{sep}{(int(last, 16) + by) % 250 + 1:02x}" if mac else f"{head}{sep}{(int(last) + by) % 250 + 1}"
    except ValueError:
        return value + f"-{by}"


@st.composite
def near_valid(draw, names=None, hosts: float = 0.0) -> tuple[str, bytes, object]:
    """An example after one or two edits that keep it plausible: other counts and budgets, an
    optional key removed, a renamed copy of a site, fabric, pool or host, another software lock."""
    name = draw(st.sampled_from(sorted(names or SPECS)))
    data = copy.deepcopy(SPECS[name])
    if hosts and draw(st.floats(0, 1)) < hosts:
        add_hosts(draw, data)
    for _ in range(draw(st.integers(1, 2))):
        paths = list(_paths(data))
        op = draw(st.sampled_from(["number", "number", "delete", "copy", "software", "add-hosts"]))
        if op == "number":
            found = [p for p in paths if p and p[-1] in NUMBER_RANGES]
            if found:
                path = draw(st.sampled_from(found))
                _get(data, path[:-1])[path[-1]] = draw(st.sampled_from(NUMBER_RANGES[path[-1]]))
        elif op == "delete":
            found = [p for p in paths if p and p[-1] in OPTIONAL]
            if found:
                path = draw(st.sampled_from(found))
                del _get(data, path[:-1])[path[-1]]
        elif op == "copy":
            found = [p for p in paths if p and p[-1] in ("sites", "fabrics", "pools", "hosts")
                     and isinstance(_get(data, p), list) and _get(data, p)]
            if found:
                items = _get(data, draw(st.sampled_from(found)))
                item = copy.deepcopy(draw(st.sampled_from(items)))
                if isinstance(item, dict):
                    by = draw(st.integers(1, 200))
                    for k in ("name", "mac", "ip", "bmc"):
                        if isinstance(item.get(k), str):
                            item[k] = _bump(item[k], by) if k != "name" else f"{item[k][:30]}-c{by}"
                items.append(item)
        elif op == "software":
            sw = data.setdefault("software", {})
            if isinstance(sw, dict):
                key = draw(st.sampled_from(sorted(SOFTWARE)))
                sw[key] = draw(st.sampled_from(SOFTWARE[key]))
        else:
            add_hosts(draw, data)
    return name, dump(data, draw).encode("utf-8", "surrogatepass"), data


@st.composite
def attack_spec(draw, names=None) -> tuple[str, bytes, object]:
    """An example (with declared hosts where it has on-prem pools) that is valid but for one field,
    which holds a payload aimed at what the field becomes: the tool must refuse it, or carry it
    where it is harmless."""
    name = draw(st.sampled_from(sorted(names or SPECS)))
    data = copy.deepcopy(SPECS[name])
    targeted(draw, data)
    return name, dump(data, draw).encode("utf-8", "surrogatepass"), data


@st.composite
def valid_spec(draw, names=None, hosts: float = 0.0) -> tuple[str, bytes, object]:
    """An unmutated example (sometimes with hosts added): the baseline every command must handle."""
    name = draw(st.sampled_from(sorted(names or SPECS)))
    data = copy.deepcopy(SPECS[name])
    if hosts and draw(st.floats(0, 1)) < hosts:
        add_hosts(draw, data)
    return name, dump(data, draw).encode(), data


# -- Pulumi project and stack config ----------------------------------------------------------

CONFIG_PAYLOADS = {
    "aifactory:factory": ["/etc/passwd", "../../../../etc/passwd", "/dev/zero", "../factory.yaml", "factory.yaml\n",
                          C, "", "..", "/proc/self/environ", f"$(touch {C})"],
    "aifactory:reservations": [{"train": f"cr-1; touch {C}"}, {"dgx": "../../x"}, {"x": "cr-1"}, ["cr-1"], "cr-1",
                               {"train": f"{{{{ lookup('pipe','touch {C}') }}}}"}, {"nvl72": "cr-0123\nx"},
                               {"onprem": None}, {"gpu": 10**30}, {"aws": {"nested": "x"}}],
    "aifactory:sshPublicKey": [SSH_KEY + "\n" + FORGED, f"ssh-ed25519 AAAA {{{{ lookup('pipe','touch {C}') }}}}"],
    "aifactory:bmcRetry": [{"attempts": 10**12}, {"attempts": -1, "backoff_s": float("nan")}, "x", [1], None],
    "aifactory:bmcVerifyTls": ["/etc/shadow", True, "false", "../../ca.pem"],
    "aifactory:bootTarget": ["Pxe\nForged", C, True],
    "aws:region": ["us-east-1\n", "../../x", True],
}


@st.composite
def stack_config_mutant(draw, name: str) -> dict[str, bytes]:
    """Files to write into a copy of stack ``name``: a mutated Pulumi.<stack>.yaml and/or Pulumi.yaml
    (and, rarely, a mutated factory.yaml)."""
    files: dict[str, bytes] = {}
    (stack_file, text), = list(STACK_CONFIGS[name].items())[:1]
    # Bombs run in a process of their own (slow to start): a small share.
    which = draw(st.sampled_from(["config"] * 10 + ["project"] * 4 + ["bytes"] * 2 + ["factory"] * 2 + ["bomb"]))
    if which == "config":
        data = yaml.safe_load(text) or {}
        if not isinstance(data.get("config"), dict):
            data["config"] = {}
        for _ in range(draw(st.integers(1, 3))):
            op = draw(st.sampled_from(["known", "known", "edit", "secure"]))
            if not (isinstance(data, dict) and isinstance(data.get("config"), dict)):
                op = "edit"  # an earlier edit replaced the document or its config
            if op == "known":
                key = draw(st.sampled_from(sorted(CONFIG_PAYLOADS)))
                data["config"][key] = copy.deepcopy(draw(st.sampled_from(CONFIG_PAYLOADS[key]) | values))
            elif op == "secure":
                data["config"][draw(st.sampled_from(["aifactory:bmcPassword", "x"]))] = {"secure": draw(values)}
            else:
                data = draw(edit(data))
        files[stack_file] = dump(data, draw).encode("utf-8", "surrogatepass")
    elif which == "project":
        data = yaml.safe_load(PROJECTS[name])
        for _ in range(draw(st.integers(1, 2))):
            data = draw(edit(data))
        files["Pulumi.yaml"] = dump(data, draw).encode("utf-8", "surrogatepass")
    elif which == "bomb":
        levels, width = draw(st.integers(2, 9)), draw(st.integers(2, 9))
        files[stack_file] = (mutations._bomb(levels, width) + "config:\n  aifactory:bmcRetry: *a"
                             + str(levels - 1) + "\n").encode()
    elif which == "bytes":
        target = draw(st.sampled_from([stack_file, "Pulumi.yaml"]))
        source = text if target == stack_file else PROJECTS[name]
        files[target] = draw(byte_edits(source.encode()))
    else:
        files["factory.yaml"] = draw(spec_mutant(names=[name]))[1]
    return files


# -- plan.json -------------------------------------------------------------------------------


def _plan_json(name: str) -> dict:
    from aifactory import plan as planning
    from aifactory import report, spec

    return json.loads(report.to_json(planning.build(spec.load(REPO / "stacks" / name / "factory.yaml"))))


PLANS: dict[str, dict] = {}


def plans() -> dict[str, dict]:
    if not PLANS:
        PLANS.update({d.name: _plan_json(d.name) for d in STACKS})
    return PLANS


@st.composite
def plan_mutant(draw) -> bytes:
    """A plan.json of an example stack with structure-aware and byte-level edits."""
    name = draw(st.sampled_from(sorted(SPECS)))
    data = copy.deepcopy(plans()[name])
    kind = draw(st.sampled_from(["structured"] * 5 + ["forged", "bytes", "deep"]))
    if kind == "deep":
        depth = draw(st.sampled_from([100, 1000, 50_000]))
        return ('{"name": "x", "pools": ' + "[" * depth + "]" * depth + ', "totals": {}, "power": {}, "software": {}}'
                ).encode()
    if kind == "forged":
        # Names that would forge a line (or a Markdown row) of the diff.
        section = draw(st.sampled_from(["pools", "fabrics", "name", "software"]))
        forged = draw(st.sampled_from([f"x\n{FORGED}", f"x\r\n{FORGED}: +1", f"x|{FORGED}|", f"x\u2028{FORGED}",
                                       f"x\x1b[1A{FORGED}"]))
        if section == "name":
            data["name"] = forged
        elif section == "software":
            data["software"][draw(st.sampled_from(sorted(data["software"]) + [forged]))] = forged
        elif data.get(section):
            data[section][0]["name"] = forged
    else:
        for _ in range(draw(st.integers(1, 4))):
            data = draw(edit(data, allow_root=False))
    text = json.dumps(data, indent=draw(st.sampled_from([None, 2])), allow_nan=True, default=str).encode()
    if kind == "bytes":
        text = draw(byte_edits(text))
    return text


# -- PXE inputs ------------------------------------------------------------------------------


@st.composite
def inventory_json(draw, spec, clean: bool = False) -> bytes:
    """The --inventory JSON for the declared hosts of ``spec`` (either shape), mutated unless ``clean``."""
    pools = spec.get("pools") if isinstance(spec, dict) else None
    hosts = [(h.get("name"), h.get("mac")) for p in (pools if isinstance(pools, list) else []) if isinstance(p, dict)
             for h in (p.get("hosts") if isinstance(p.get("hosts"), list) else []) if isinstance(h, dict)]
    flat = {str(n): [m, f"5c:ff:35:ee:00:{i:02x}"] for i, (n, m) in enumerate(hosts)}
    if draw(st.booleans()):
        data = flat
    else:
        data = {"dgx": {"hosts": [{"name": n, "macs": macs} for n, macs in flat.items()]}}
    op = "none" if clean else draw(st.sampled_from(["edit", "edit", "mac", "nested", "deep", "bytes", "none"]))
    if op == "edit":
        for _ in range(draw(st.integers(1, 3))):
            data = draw(edit(data))
    elif op == "mac" and flat:
        node = draw(st.sampled_from(sorted(flat)))
        bad = draw(st.sampled_from(["aa:bb:cc:dd:ee:ff\n", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01",
                                    f"aa:bb:cc:dd:ee:ff\ndhcp-host=aa:bb:cc:dd:ee:01,{FORGED}", "AA:BB:CC:DD:EE:FF",
                                    "00:00:00:00:00:00", f"$(touch {C})"]))
        data = {node: [bad, *flat[node]]}
    elif op == "nested":
        data = {"site": {"pool": data}} if draw(st.booleans()) else {"dgx": {"hosts": {"dgx-001": flat}}}
    elif op == "deep":
        depth = draw(st.sampled_from([200, 5000, 100_000]))
        return ("{\"a\": " + "[" * depth + "]" * depth + "}").encode()
    text = json.dumps(data, allow_nan=True, default=str).encode()
    if op == "bytes":
        text = draw(byte_edits(text))
    return text


@st.composite
def ssh_key_file(draw) -> bytes:
    op = draw(st.sampled_from(["valid"] * 6 + ["comment", "private", "binary", "huge", "lines", "empty", "bytes"]))
    if op == "comment":
        return (SSH_KEY.rsplit(" ", 1)[0] + " " + draw(st.sampled_from(
            [f"x\n{FORGED}", "x" * 300, f"$(touch {C})", "a\x00b", "a\u2028b", "é"]))).encode("utf-8", "surrogatepass")
    if op == "private":
        return b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    if op == "binary":
        return b"\xff\xfe\x00" + draw(st.binary(max_size=64))
    if op == "huge":
        return (SSH_KEY + "\n") * draw(st.sampled_from([1000, 20_000]))
    if op == "lines":
        return (SSH_KEY + "\n" + draw(st.sampled_from(["#cloud-config\nruncmd: [touch " + C + "]", "", "\r\n",
                                                       SSH_KEY.replace("fuzz@", "two@")])) + "\n").encode()
    if op == "empty":
        return b""
    if op == "bytes":
        return draw(byte_edits(SSH_KEY.encode() + b"\n"))
    return SSH_KEY.encode() + b"\n"


@st.composite
def pxe_options(draw) -> tuple[list[str], bool]:
    """(extra PXE options, whether a malformed value makes exit 2 a correct answer)."""
    args: list[str] = []
    usage = False
    for option, choices in (
        ("--interface", ["eno1", "eno1\n", f"eno1\n{FORGED}", "eth0;touch", "a" * 20, "-x", "br0.100", "enp1s0:1"]),
        ("--domain", ["cluster.example", "cluster.example\n", f"x\n{FORGED}", "UPPER.example", "-x.example", "..",
                      "a" * 300, "example.com."]),
        ("--subnet", ["10.20.0.0/16", "10.20.0.0/24", "10.20.0.1/16", "::/0", "0.0.0.0/0", "10.20.0.0/33", "x"]),
        ("--gateway", ["10.20.0.1", "fe80::1%eth0", "10.20.0.1\n", "x"]),
        ("--dns", ["10.20.0.1", "8.8.8.8\n", "fe80::1", "$(touch " + C + ")"]),
        ("--http-port", ["8080", "0", "65536", "-1", "99999999999999999999", "abc", "80\n"]),
    ):
        if draw(st.integers(0, 5)) == 0:
            value = draw(st.sampled_from(choices))
            args += [option, value]
            usage = usage or option == "--http-port"
    return args, usage


server_ips = st.sampled_from([SERVER_IP] * 8 + ["10.20.0.11", "10.20.0.2\n", "fe80::1", "fe80::1%eth0", "0.0.0.0",
                                                 "255.255.255.255", "10.20.0.2 ", "x", f"$(touch {C})"])
