"""Hypothesis strategies that turn the example specs into hostile ones.

Two families:

* structured: parse a valid ``stacks/*/factory.yaml``, change the data (wrong types, deleted
  keys, unknown keys, huge and negative numbers, unicode, broken references, duplicated
  list items), and dump it back with ``yaml.safe_dump``;
* raw text: edit the YAML text itself (duplicate keys, alias bombs, deep nesting, Python and
  custom tags, merge keys, junk characters, truncation, several documents, invalid UTF-8).

Every strategy yields ``bytes``: the exact content of the file the tool is given.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(REPO.glob("stacks/*/factory.yaml"))
TEXTS = {p.parent.name: p.read_text() for p in EXAMPLES}
DATA = {name: yaml.safe_load(text) for name, text in TEXTS.items()}

# Strings aimed at whatever a name later reaches: a shell, a Jinja2 template, a file path,
# a hostname, an Ansible inventory, a cloud API.
HOSTILE_STRINGS = [
    "x; rm -rf /", "$(reboot)", "`id`", "../../etc/passwd", "/etc/shadow", "{{ 7*7 }}", "{% raw %}",
    "${HOME}", "a\nb", "a\x00b", "A", "-rf", "--help", "a b", "pool.evil", "x" * 300, "", " ", "\t",
    "café", "ｐｏｏｌ", "\u202eevil", "☃", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "null", "~", "yes", "0x1F", "1e400", ".inf",
    "0.0.0.0/0", "::/0", "10.0.0.1/8", "256.1.1.1/33", "00:11:22:33:44:gg", "*", "&a", "!!str",
]
# Plausible values, so that some mutants get past the schema and reach the planner's checks.
PLAUSIBLE = [
    "fill", "aws", "gcp", "azure", "oci", "onprem", "lab", "p5.48xlarge", "dgx-h100", "gb200-nvl72",
    "hgx-h100", "a3-megagpu-8g", "efa", "infiniband", "roce", "580", "570", "535", "13.0", "12.8", "dc1",
    "aws-use1", "campus", "compute", "qm9700", "ufm", "opensm", "ubuntu-22.04", "debian-12", "debian-13",
    "capacity-block", "spot", "kubernetes", "us-east-1", "us-east-1a", "00:11:22:33:44:55",
]
NUMBERS = [0, -1, 1, 2, 7, 127, 128, 1024, 10**7, 10**7 + 1, 2**31, 2**63, -(2**63), 10**30, 10**400,
           0.0, -0.0, 0.5, 1e-300, 1e308, float("inf"), float("-inf"), float("nan")]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(NUMBERS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HOSTILE_STRINGS),
    st.sampled_from(PLAUSIBLE),
    st.text(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(PLAUSIBLE + ["name", "nodes"])),
                        inner, max_size=3),
    ),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def _get(node, path):
    for part in path:
        node = node[part]
    return node


def _names(data):
    out = []
    for field in ("sites", "fabrics", "pools"):
        items = data.get(field) if isinstance(data, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                out.append(item["name"])
    return out


@st.composite
def _mutate_once(draw, data):
    paths = list(_paths(data))
    path = draw(st.sampled_from(paths))
    target = _get(data, path)
    parent = _get(data, path[:-1]) if path else None
    op = draw(st.sampled_from(
        ["replace", "replace", "delete", "unknown-key", "reference", "duplicate", "empty", "number", "unicode"]))
    if not path:  # the root: replace it wholesale or add a stray key
        if op == "replace":
            return draw(values)
        if isinstance(data, dict):
            data[draw(st.text(max_size=12))] = draw(values)
        return data
    key = path[-1]
    if op == "delete":
        del parent[key]
    elif op == "unknown-key" and isinstance(target, dict):
        target[draw(st.sampled_from(["nodez", "sytem", "Name", "tags", "", "é", "pools", "x" * 100]))] = draw(values)
    elif op == "reference":
        pool_keys = ["site", "fabric", "system", "provider"]
        names = _names(data) + PLAUSIBLE + ["nowhere"]
        if isinstance(target, dict):
            target[draw(st.sampled_from(pool_keys))] = draw(st.sampled_from(names))
        else:
            parent[key] = draw(st.sampled_from(names))
    elif op == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(target))
    elif op == "empty":
        parent[key] = draw(st.sampled_from([[], {}, "", None]))
    elif op == "number":
        parent[key] = draw(st.sampled_from(NUMBERS) | st.integers(-(10**12), 10**12) | st.floats())
    elif op == "unicode":
        base = target if isinstance(target, str) else "x"
        parent[key] = base + draw(st.text(min_size=1, max_size=8))
    else:
        parent[key] = draw(values)
    return data


@st.composite
def structured(draw):
    """A valid example with one to four mutations, dumped back to YAML."""
    name = draw(st.sampled_from(sorted(DATA)))
    data = copy.deepcopy(DATA[name])
    for _ in range(draw(st.integers(1, 4))):
        data = draw(_mutate_once(data))
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=draw(st.booleans()),
                          default_flow_style=draw(st.sampled_from([False, None])))
    return text.encode("utf-8")


def _bomb(levels: int, width: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


TAGGED = [
    "!!python/object/apply:os.system ['echo pwned']", "!!python/name:os.system", "!!binary aGVsbG8=",
    "!!set {a, b}", "!!omap [{a: 1}]", "!!timestamp 2024-01-01", "!!timestamp 99999-99-99", "!custom x",
    "!!float nan", "!!float .inf", "!!int 0x10", "!!str 5", "!!map {a: 1}", "!!seq [1]", "!<tag:evil> x",
    "2001-02-03", "1_000_000", "0o17", "+.inf", "0b101", "12:30:00", ".NaN",
]


@st.composite
def raw(draw):
    """The YAML text of an example, edited as text."""
    name = draw(st.sampled_from(sorted(TEXTS)))
    text = TEXTS[name]
    lines = text.splitlines(keepends=True)
    op = draw(st.sampled_from([
        "dup-line", "drop-line", "junk", "truncate", "bomb", "deep-flow", "deep-block", "tag", "merge",
        "alias", "documents", "indent", "bytes", "bom-crlf", "swap-lines",
    ]))
    i = draw(st.integers(0, max(0, len(lines) - 1)))
    if op == "dup-line":
        lines.insert(i, lines[i] if lines else "a: 1\n")
        text = "".join(lines)
    elif op == "drop-line" and lines:
        del lines[i]
        text = "".join(lines)
    elif op == "swap-lines" and len(lines) > 1:
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        text = "".join(lines)
    elif op == "junk":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.text(min_size=1, max_size=20) | st.sampled_from(
            [":", "- ", "{", "}", "[", "]", "&", "*", "!", "|", ">", "%", "@", "`", "\t", "\x00", "\x85",
             "\ufeff", "\u2028", '"', "'", "#", "? ", "---", "..."]))
        text = text[:at] + junk + text[at:]
    elif op == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif op == "bomb":
        text = _bomb(draw(st.integers(2, 12)), draw(st.integers(2, 10))) + text
    elif op == "deep-flow":
        depth = draw(st.integers(1, 20_000))
        key = draw(st.sampled_from(["description", "tags", "sites", "pools", "extra"]))
        text = text + f"{key}: " + "[" * depth + "]" * depth + "\n" if key != "sites" else text.replace(
            "sites:", "sites: " + "[" * depth + "]" * depth + "\nxsites:", 1)
    elif op == "deep-block":
        depth = draw(st.integers(1, 400))
        text = text + "".join("  " * d + f"k{d}:\n" for d in range(depth)) + "  " * depth + "v: 1\n"
    elif op == "tag" and lines:
        tagged = draw(st.sampled_from(TAGGED))
        # Put the tagged value on the first "key: value" line at or after i.
        for j in list(range(i, len(lines))) + list(range(0, i)):
            line = lines[j]
            if ": " in line and not line.lstrip().startswith("#"):
                head, _, _ = line.partition(": ")
                lines[j] = f"{head}: {tagged}\n"
                break
        text = "".join(lines)
    elif op == "merge":
        text = "base: &base {name: x}\n" + text.replace("pools:\n", "pools:\n  - <<: *base\n", 1)
    elif op == "alias":
        text = text.replace("sites:", "sites: &s", 1) + "fabrics2: *s\n" + draw(st.sampled_from(["", "x: *nope\n"]))
    elif op == "documents":
        text = text + "---\n" + draw(st.sampled_from([text, "a: 1\n", "", "..."]))
    elif op == "indent":
        text = text.replace("  ", draw(st.sampled_from(["\t", " ", "   ", ""])), draw(st.integers(1, 5)))
    elif op == "bom-crlf":
        text = draw(st.sampled_from(["\ufeff", ""])) + text.replace("\n", draw(st.sampled_from(["\r\n", "\r"])))
    elif op == "bytes":
        data = text.encode()
        at = draw(st.integers(0, len(data)))
        junk = draw(st.binary(min_size=1, max_size=16) | st.sampled_from(
            [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x00", b"\xfe\xff"]))
        return data[:at] + junk + data[at:]
    return text.encode("utf-8", errors="surrogatepass")


hostile = st.one_of(structured(), raw())
