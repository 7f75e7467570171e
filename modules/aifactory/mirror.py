"""``aifactory mirror``: the NVIDIA packages of a plan's software lock as an offline bundle.

For air-gapped sites: one run on a machine that reaches NVIDIA's CUDA repository writes a folder
that a web server (or a USB disk) carries to the factory, and the nodes install the lock from it.

What is fetched: the packages the roles install for the lock (:func:`aifactory.plan.software.packages`,
the one source of the names, which also feeds ``versions.lock.json`` and the inventory), for every
CPU architecture of the plan's NVIDIA pools, and every package of the same repository they depend
on, at the version the package manager would pick (the newest that satisfies the relation). What
their dependencies need from the OS's own archive (DKMS, kernel headers) is listed in the manifest
as ``external``, not fetched. GDRCopy comes from NVIDIA's redist folder, not this repository, and is
not part of the bundle yet.

How it is trusted: apt's ``InRelease`` is checked with ``gpgv`` against the repository's key, and
``Packages`` against the ``SHA256`` the signed text gives it; dnf's ``repomd.xml`` is checked with
its detached signature where the repository has one, ``primary.xml`` against the ``repomd.xml``
checksum, and every RPM's own signature with ``rpmkeys``. Every package file is checked against
the index's SHA256 and size before it is kept. The key is the one the nvidia_repository role trusts
(``<key id>.pub`` beside the packages, whose fingerprint must end in the role's key id), or a file
given with ``--key OS=FILE``, which then is the only key accepted.

What is written, for each repository, under ``DIR/<NVIDIA's folder>/<arch>/`` (``ubuntu2404/x86_64``,
``rhel9/x86_64``, the layout the nvidia_repository role builds from ``nvidia_repository_base_url``):
the package files at the paths the upstream index names them, a regenerated index (apt: flat
``Packages``, ``Packages.gz`` and an unsigned ``Release``; dnf: ``createrepo_c`` repodata with the
upstream module streams), and the repository key as ``<key id>.pub``. ``DIR/manifest.json`` lists
the lock digest (:attr:`SoftwareLock.digest`, what each node reports) and every file with
its size, SHA256 and the URL it came from.

How it is written: under the output folder's lock (:class:`aifactory.files.Folder`), into a staging
folder beside the repositories (``.aifactory-tmp-*``, removed by the next run if this one is
killed), renamed into place only when every file is verified. A file already in the bundle with
the right SHA256 is linked into the staging folder instead of downloaded again. A failure leaves
the previous bundle as it was.
"""

from __future__ import annotations

import base64
import bz2
import fnmatch
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import yaml

from . import files
from .catalog import Catalog
from .errors import AifactoryError
from .plan import software
from .plan.model import Plan
from .resources import playbooks_dir

MANIFEST = "manifest.json"
OWNER_MANIFEST = ".aifactory-mirror.json"  # marks the folder as aifactory's (files.Folder)
MAX_INDEX_BYTES = 512 * 1024 * 1024
MAX_PACKAGE_BYTES = 16 * 1024 * 1024 * 1024
TIMEOUT_S = 60

# NVIDIA's folder per node OS and per CPU architecture, as the nvidia_repository role computes it
# (vars/main.yml: _nvidia_repository_distro, _nvidia_repository_arch).
REPO_FOLDERS = {"ubuntu-22.04": "ubuntu2204", "ubuntu-24.04": "ubuntu2404", "debian-12": "debian12",
                "debian-13": "debian13", "rhel-9": "rhel9"}
ARCH_FOLDERS = {"x86_64": "x86_64", "arm64": "sbsa"}
DEB_ARCHES = {"x86_64": ("amd64", "all"), "arm64": ("arm64", "all")}
RPM_ARCHES = {"x86_64": ("x86_64", "noarch", "i686"), "arm64": ("aarch64", "noarch")}
# The components of the lock the roles install; the driver metapackage (which would pull X11) and
# the dnf module stream are recorded in the lock, not installed as packages.
INSTALLED = ("driver_utils", "driver_persistenced", "driver_libs", "driver_kernel", "fabric_manager", "nscq",
             "imex", "nvlsm", "cuda_toolkit", "nccl", "nccl_dev", "dcgm")

_RPM_NS = {"c": "http://linux.duke.edu/metadata/common", "rpm": "http://linux.duke.edu/metadata/rpm",
           "r": "http://linux.duke.edu/metadata/repo"}
# A file name from an upstream index: what may be written under --out.
_FILE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+=%~:-]{0,254}")
_OS_ID = re.compile(r"[a-z]+-[0-9]+(\.[0-9]+)?")
_HEX = re.compile(r"[0-9a-fA-F]{8,40}")


def _role_data() -> tuple[str, dict[str, str]]:
    """The nvidia_repository role's default base URL and key id per folder: one source for both."""
    role = playbooks_dir() / "roles" / "nvidia_repository"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    keys = yaml.safe_load((role / "vars" / "main.yml").read_text())["_nvidia_repository_keys"]
    return defaults["nvidia_repository_base_url"], {k: str(v) for k, v in keys.items()}


# --- options ---------------------------------------------------------------------------------

def parse_upstream(values: Iterable[str]) -> dict[str, str]:
    """``OS=URL`` pairs (``--upstream``) -> {os: base URL}; one-line errors."""
    out: dict[str, str] = {}
    for value in values:
        os_id, url = _pair(value, "--upstream", "OS=URL")
        parsed = urllib.parse.urlsplit(url)
        if (parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment
                or parsed.username or parsed.password or any(c.isspace() or not c.isprintable() for c in url)):
            raise AifactoryError(f"--upstream {os_id}: {url!r} is not an http(s) URL without credentials, "
                                 "query or fragment")
        if os_id in out:
            raise AifactoryError(f"--upstream {os_id}: given twice")
        out[os_id] = url.rstrip("/")
    return out


def parse_keys(values: Iterable[str]) -> dict[str, Path]:
    """``OS=FILE`` pairs (``--key``) -> {os: armoured public key file}; one-line errors."""
    out: dict[str, Path] = {}
    for value in values:
        os_id, path = _pair(value, "--key", "OS=FILE")
        if os_id in out:
            raise AifactoryError(f"--key {os_id}: given twice")
        text = files.read_text(path, 1024 * 1024, f"--key {os_id}:")
        if "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in text:
            raise AifactoryError(f"--key {os_id}: {path} is not an armoured OpenPGP public key")
        out[os_id] = Path(path)
    return out


def _pair(value: str, option: str, shape: str) -> tuple[str, str]:
    os_id, sep, rest = value.partition("=")
    if not sep or not rest:
        raise AifactoryError(f"{option}: {value!r} is not {shape}")
    if os_id not in REPO_FOLDERS:
        raise AifactoryError(f"{option}: {os_id!r} is not a node OS NVIDIA's repository serves "
                             f"(one of {', '.join(REPO_FOLDERS)})")
    if "\x00" in rest:
        raise AifactoryError(f"{option} {os_id}: not a valid value")
    return os_id, rest


# --- versions --------------------------------------------------------------------------------

def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or a revision (lib/dpkg/version.c)."""
    i = j = 0
    while i < len(a) or j < len(b):
        diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not diff:
                diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if diff:
            return diff
    return 0


def _split_deb(v: str) -> tuple[int, str, str]:
    epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or 0), upstream, revision


def deb_compare(a: str, b: str) -> int:
    ea, ua, ra = _split_deb(a)
    eb, ub, rb = _split_deb(b)
    return (ea > eb) - (ea < eb) or _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def _rpmvercmp(a: str, b: str) -> int:
    """rpm's comparison of a version or a release (rpmio/rpmvercmp.c)."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not a[i].isalnum() and a[i] not in "~^":
            i += 1
        while j < len(b) and not b[j].isalnum() and b[j] not in "~^":
            j += 1
        ca, cb = a[i:i + 1], b[j:j + 1]
        if ca == "~" or cb == "~":  # a tilde sorts before everything, the end included
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if ca == "^" or cb == "^":  # a caret sorts after the end, before anything else
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (ca and cb):
            break
        digits = ca.isdigit()
        test = str.isdigit if digits else str.isalpha
        si, sj = i, j
        while i < len(a) and test(a[i]):
            i += 1
        while j < len(b) and test(b[j]):
            j += 1
        x, y = a[si:i], b[sj:j]
        if not y:
            return 1 if digits else -1
        if digits:
            x, y = x.lstrip("0"), y.lstrip("0")
            if len(x) != len(y):
                return 1 if len(x) > len(y) else -1
        if x != y:
            return 1 if x > y else -1
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def rpm_compare(a: tuple[int, str, str], b: tuple[int, str, str]) -> int:
    return (a[0] > b[0]) - (a[0] < b[0]) or _rpmvercmp(a[1], b[1]) or _rpmvercmp(a[2], b[2])


# --- indexes ---------------------------------------------------------------------------------

@dataclass
class Entry:
    """One package of an upstream index."""

    name: str
    version: str  # full version as the index gives it (deb: [epoch:]upstream-revision; rpm: [epoch:]ver-rel)
    arch: str
    path: str  # relative to the repository's base URL
    size: int
    sha256: str
    depends: list[list[tuple[str, str, str]]]  # groups of alternatives (name, op, version)
    provides: list[tuple[str, str, str]]
    raw: str = ""  # deb: the index's stanza as it is
    evr: tuple[int, str, str] = (0, "", "")  # rpm only

    def compare(self, other: "Entry") -> int:
        return rpm_compare(self.evr, other.evr) if self.raw == "" else deb_compare(self.version, other.version)

    def satisfies(self, op: str, version: str, rpm: bool) -> bool:
        if not op:
            return True
        if rpm:
            e, _, vr = version.rpartition(":") if ":" in version else ("0", "", version)
            v, _, r = vr.partition("-")
            theirs = (int(e or 0), v, r)
            mine = self.evr if r else (self.evr[0], self.evr[1], "")
            c = rpm_compare(mine, theirs)
        else:
            c = deb_compare(self.version, version)
        return {"=": c == 0, "==": c == 0, "<<": c < 0, "<": c < 0 if rpm else c <= 0, "<=": c <= 0,
                ">>": c > 0, ">": c > 0 if rpm else c >= 0, ">=": c >= 0}.get(op, False)


def _stanzas(text: str) -> Iterable[str]:
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        if block.strip():
            yield block


def _fields(stanza: str) -> dict[str, str]:
    out: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line[:1] in (" ", "\t") and key:
            out[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            out[key] = value.strip()
    return out


_DEB_REL = re.compile(r"^\s*([A-Za-z0-9.+-]+)(?::[a-z0-9-]+)?\s*(?:\(\s*(<<|<=|=|>=|>>|<|>)\s*([^)\s]+)\s*\))?\s*"
                      r"(?:\[[^]]*\])?\s*$")


def _deb_relations(text: str) -> list[list[tuple[str, str, str]]]:
    groups = []
    for group in filter(None, (g.strip() for g in text.split(","))):
        alts = []
        for alt in group.split("|"):
            m = _DEB_REL.match(alt)
            if m:
                alts.append((m.group(1), m.group(2) or "", m.group(3) or ""))
        if alts:
            groups.append(alts)
    return groups


def parse_packages(text: str, arches: tuple[str, ...]) -> list[Entry]:
    """An apt ``Packages`` index -> its entries for ``arches``."""
    out = []
    for stanza in _stanzas(text):
        f = _fields(stanza)
        if f.get("Architecture") not in arches or not all(k in f for k in ("Package", "Version", "Filename", "SHA256")):
            continue
        try:
            size = int(f.get("Size", ""))
        except ValueError:
            raise AifactoryError(f"Packages: {f['Package']}: no valid Size") from None
        depends = _deb_relations(f.get("Pre-Depends", "")) + _deb_relations(f.get("Depends", ""))
        provides = [alts[0] for alts in _deb_relations(f.get("Provides", ""))]
        out.append(Entry(f["Package"], f["Version"], f["Architecture"], _relpath(f["Filename"]), size,
                         f["SHA256"].lower(), depends, provides, raw=stanza.strip("\n")))
    return out


def parse_primary(data: bytes, arches: tuple[str, ...]) -> list[Entry]:
    """A dnf ``primary.xml`` -> its entries for ``arches``."""
    flags = {"EQ": "=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">="}

    def rel(el) -> tuple[str, str, str]:
        name, flag = el.get("name", ""), flags.get(el.get("flags", ""), "")
        if not flag:
            return name, "", ""
        version = (f"{el.get('epoch')}:" if el.get("epoch") not in (None, "0") else "") + el.get("ver", "")
        if el.get("rel"):
            version += f"-{el.get('rel')}"
        return name, flag, version

    out = []
    root = ET.fromstring(data)
    for pkg in root.findall("c:package", _RPM_NS):
        if pkg.get("type") != "rpm" or pkg.findtext("c:arch", "", _RPM_NS) not in arches:
            continue
        v = pkg.find("c:version", _RPM_NS)
        checksum = pkg.find("c:checksum", _RPM_NS)
        if v is None or checksum is None or checksum.get("type") != "sha256":
            raise AifactoryError(f"primary.xml: {pkg.findtext('c:name', '', _RPM_NS)}: no sha256 checksum")
        evr = (int(v.get("epoch") or 0), v.get("ver", ""), v.get("rel", ""))
        fmt = pkg.find("c:format", _RPM_NS)
        requires = [[rel(e)] for e in fmt.findall("rpm:requires/rpm:entry", _RPM_NS)] if fmt is not None else []
        provides = [rel(e) for e in fmt.findall("rpm:provides/rpm:entry", _RPM_NS)] if fmt is not None else []
        name = pkg.findtext("c:name", "", _RPM_NS)
        location = pkg.find("c:location", _RPM_NS)
        size = pkg.find("c:size", _RPM_NS)
        href = location.get("href", "") if location is not None else ""
        out.append(Entry(name, (f"{evr[0]}:" if evr[0] else "") + f"{evr[1]}-{evr[2]}",
                         pkg.findtext("c:arch", "", _RPM_NS), _relpath(href),
                         int(size.get("package", "0")) if size is not None else 0, checksum.text.strip().lower(),
                         [r for r in requires if not r[0][0].startswith(("rpmlib(", "/"))],
                         provides, evr=evr))
    return out


def _relpath(path: str) -> str:
    """A package's path from an index, as a safe relative path; refuses anything else."""
    rel = path[2:] if path.startswith("./") else path
    parts = rel.split("/")
    if not rel or any(not _FILE_PART.fullmatch(p) or p in (".", "..") for p in parts):
        raise AifactoryError(f"refusing the package path {path[:200]!r} from the upstream index")
    return rel


# --- choosing ---------------------------------------------------------------------------------

def _wanted(pkg: software.Package) -> Callable[[Entry], bool]:
    """Whether an entry is the version the role asks the package manager for (``Package.spec``)."""
    if pkg.version is None:
        return lambda e: e.name == pkg.name
    pattern = pkg.version if pkg.version.endswith("*") else pkg.version + "*"

    def match(e: Entry) -> bool:
        if e.name != pkg.name:
            return False
        bare = e.version.split(":", 1)[1] if ":" in e.version else e.version
        if pkg.pin == "=":
            return fnmatch.fnmatchcase(bare, pattern)
        return fnmatch.fnmatchcase(e.evr[1], pkg.version) or fnmatch.fnmatchcase(bare, pattern)
    return match


def _newest(entries: list[Entry]) -> Entry:
    best = entries[0]
    for e in entries[1:]:
        if e.compare(best) > 0:
            best = e
    return best


def select(entries: list[Entry], wanted: dict[str, software.Package],
           rpm: bool) -> tuple[dict[str, Entry], dict[str, str], list[str]]:
    """The lock's packages and their dependency closure within one repository.

    Returns ({name: entry}, {name: lock component or "dependency"}, sorted external names): a
    dependency no package of the repository satisfies comes from the OS archive."""
    by_name: dict[str, list[Entry]] = {}
    providers: dict[str, list[tuple[Entry, tuple[str, str, str]]]] = {}
    for e in entries:
        by_name.setdefault(e.name, []).append(e)
        for p in e.provides:
            providers.setdefault(p[0], []).append((e, p))
    chosen: dict[str, Entry] = {}
    why: dict[str, str] = {}
    external: set[str] = set()
    queue: list[Entry] = []
    for component, pkg in wanted.items():
        found = [e for e in by_name.get(pkg.name, []) if _wanted(pkg)(e)]
        if not found:
            have = sorted({e.version for e in by_name.get(pkg.name, [])}, key=str)[-5:]
            raise AifactoryError(f"{pkg.name} {pkg.version or ''}".rstrip() + " (" + component + "): not in the "
                                 "upstream index" + (f" (it has {', '.join(have)})" if have else ""))
        entry = _newest(found)
        if entry.name not in chosen:
            chosen[entry.name] = entry
            why[entry.name] = component
            queue.append(entry)

    def candidates(name: str, op: str, version: str) -> list[Entry]:
        direct = [e for e in by_name.get(name, []) if e.satisfies(op, version, rpm)]
        provided = [e for e, p in providers.get(name, []) if e.name != name and
                    (not op or (p[1] in ("=", "==") and _provided_ok(p[2], op, version, rpm)))]
        return direct + provided

    while queue:
        entry = queue.pop()
        for group in entry.depends:
            if any(_in_chosen(chosen, alt, rpm, providers) for alt in group):
                continue
            for alt in group:
                found = candidates(*alt)
                if found:
                    pick = _newest(found)
                    if pick.name not in chosen:
                        chosen[pick.name] = pick
                        why[pick.name] = "dependency"
                        queue.append(pick)
                    break
            else:
                external.add(group[0][0])
    return chosen, why, sorted(external)


def _provided_ok(provided_version: str, op: str, version: str, rpm: bool) -> bool:
    probe = Entry("", provided_version, "", "", 0, "", [], [])
    if rpm:
        e, _, vr = provided_version.rpartition(":") if ":" in provided_version else ("0", "", provided_version)
        v, _, r = vr.partition("-")
        probe.evr = (int(e or 0), v, r)
    else:
        probe.raw = "x"
    return probe.satisfies(op, version, rpm)


def _in_chosen(chosen: dict[str, Entry], alt: tuple[str, str, str], rpm: bool, providers) -> bool:
    name, op, version = alt
    if name in chosen and chosen[name].satisfies(op, version, rpm):
        return True
    return any(e.name in chosen and chosen[e.name] is e and (not op or _provided_ok(p[2], op, version, rpm))
               for e, p in providers.get(name, []))


# --- fetching and verifying ------------------------------------------------------------------

class Fetcher:
    """HTTP(S) downloads into files, each checked against its expected SHA256 and size."""

    def __init__(self) -> None:
        self.downloaded: list[str] = []

    def get(self, url: str, max_bytes: int = MAX_INDEX_BYTES) -> bytes:
        with self._open(url) as resp:
            data = resp.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise AifactoryError(f"{url}: larger than {max_bytes} bytes")
        return data

    def exists(self, url: str) -> bool:
        try:
            with self._open(url, missing_ok=True) as resp:
                return resp is not None and resp.read(1) is not None
        except _Missing:
            return False

    def _open(self, url: str, missing_ok: bool = False):
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise AifactoryError(f"{url}: only http and https are fetched")
        try:
            return urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "aifactory-mirror"}),
                                          timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            if missing_ok and exc.code == 404:
                raise _Missing() from None
            raise AifactoryError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AifactoryError(f"{url}: cannot fetch: {reason}") from None

    def download(self, url: str, dest: Path, size: int, sha256: str) -> None:
        """``url`` into ``dest`` (a new file), refused unless it has ``size`` bytes hashing to ``sha256``."""
        h = hashlib.sha256()
        total = 0
        limit = min(size, MAX_PACKAGE_BYTES) if size else MAX_PACKAGE_BYTES
        with self._open(url) as resp, open(dest, "xb") as out:
            while chunk := resp.read(1 << 20):
                total += len(chunk)
                if total > limit:
                    raise AifactoryError(f"{url}: larger than the index says ({size} bytes)")
                h.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size and total != size:
            raise AifactoryError(f"{url}: {total} bytes, the index says {size}")
        if h.hexdigest() != sha256:
            raise AifactoryError(f"{url}: SHA256 {h.hexdigest()} does not match the index's {sha256}; refused")
        self.downloaded.append(url)


class _Missing(Exception):
    pass


def _check(data: bytes, sha256: str, what: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != sha256.lower():
        raise AifactoryError(f"{what}: SHA256 {got} does not match the signed index's {sha256}; refused")


def _dearmor(text: str, what: str) -> bytes:
    """An armoured OpenPGP block's binary body (what gpgv reads as a keyring)."""
    lines = text.strip().splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith("-----BEGIN PGP PUBLIC KEY BLOCK"))
        end = next(i for i, l in enumerate(lines) if l.startswith("-----END PGP PUBLIC KEY BLOCK"))
        body = lines[start + 1:end]
        body = body[body.index("") + 1:] if "" in body else body
        return base64.b64decode("".join(l for l in body if not l.startswith("=")), validate=True)
    except (StopIteration, ValueError):
        raise AifactoryError(f"{what}: not an armoured OpenPGP public key") from None


def _fingerprint(binary: bytes, what: str) -> str:
    """The v4 fingerprint of the first (primary) key packet of a binary OpenPGP key (RFC 4880 12.2)."""
    try:
        tag_byte = binary[0]
        if not tag_byte & 0x80:
            raise ValueError
        if tag_byte & 0x40:  # new format
            tag, first = tag_byte & 0x3F, binary[1]
            if first < 192:
                length, start = first, 2
            elif first < 224:
                length, start = ((first - 192) << 8) + binary[2] + 192, 3
            elif first == 255:
                length, start = int.from_bytes(binary[2:6], "big"), 6
            else:
                raise ValueError
        else:  # old format
            tag, kind = (tag_byte >> 2) & 0x0F, tag_byte & 0x03
            size = {0: 1, 1: 2, 2: 4}[kind]
            length, start = int.from_bytes(binary[1:1 + size], "big"), 1 + size
        body = binary[start:start + length]
        if tag != 6 or len(body) != length or body[0] != 4:
            raise ValueError
    except (IndexError, KeyError, ValueError):
        raise AifactoryError(f"{what}: not an OpenPGP v4 public key") from None
    return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise AifactoryError(f"{name} not found: install {package}")
    return path


def _gpgv(key_armored: str, signed: Path, data: Optional[Path], key_id: Optional[str], what: str) -> tuple[str, bytes]:
    """Verify ``signed`` (inline, or detached over ``data``) with the one key; returns (the
    signer's primary fingerprint, the signed text of an inline signature)."""
    with tempfile.TemporaryDirectory(prefix="aifactory-gpgv-") as work:
        keyring = Path(work) / "key.gpg"
        keyring.write_bytes(_dearmor(key_armored, what))
        out = Path(work) / "out"
        argv = [_tool("gpgv", "gpgv"), "--homedir", work, "--status-fd", "1", "--keyring", str(keyring)]
        argv += ["--output", str(out), str(signed)] if data is None else [str(signed), str(data)]
        proc = subprocess.run(argv, capture_output=True, text=True)
        valid = [l.split() for l in proc.stdout.splitlines() if l.startswith("[GNUPG:] VALIDSIG ")]
        if proc.returncode != 0 or not valid:
            detail = " ".join((proc.stderr.strip().splitlines() or ["no valid signature"])[-1:])
            raise AifactoryError(f"{what}: signature not valid with the repository key: {detail[:200]}")
        fingerprint = valid[0][-1].upper()
        if key_id and not fingerprint.endswith(key_id.upper()):
            raise AifactoryError(f"{what}: signed by {fingerprint}, not by the repository key {key_id}")
        return fingerprint, out.read_bytes() if data is None else b""


def _decompress(data: bytes, href: str) -> bytes:
    if href.endswith(".gz"):
        return gzip.decompress(data)
    if href.endswith(".xz"):
        return lzma.decompress(data)
    if href.endswith(".bz2"):
        return bz2.decompress(data)
    if href.endswith(".zst"):
        raise AifactoryError(f"{href}: zstd-compressed metadata is not supported")
    return data


# --- one repository --------------------------------------------------------------------------

@dataclass
class Repo:
    os_id: str
    cpu_arch: str
    url: str  # upstream, ending in /
    rel: str  # folder under --out
    key_id: str
    key_file: Optional[Path]  # --key: the only key accepted
    signer: Optional[str] = None
    index_signed: bool = False
    date: Optional[str] = None  # the upstream Release's Date, which the bundle's Release repeats
    packages: list[dict] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    files: dict[str, dict] = field(default_factory=dict)  # rel (under --out) -> size, sha256, url

    @property
    def rpm(self) -> bool:
        return software.os_family(self.os_id) == "redhat"


def _key(repo: Repo, fetch: Fetcher, stage: Path) -> str:
    """The repository key, armoured: ``--key``'s, or the one the role downloads (whose fingerprint
    the signature check then requires to end in the role's key id)."""
    name = f"{repo.key_id}.pub"
    if repo.key_file is not None:
        text = files.read_text(repo.key_file, 1024 * 1024, "--key")
    else:
        text = fetch.get(repo.url + name, 1024 * 1024).decode("ascii", "replace")
        # The role trusts this file as served; the bundle at least requires the role's key id.
        fingerprint = _fingerprint(_dearmor(text, repo.url + name), repo.url + name)
        if not fingerprint.endswith(repo.key_id.upper()):
            raise AifactoryError(f"{repo.url}{name}: key {fingerprint} is not the repository key {repo.key_id}; "
                                 "give the right one with --key")
    target = stage / repo.rel / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    _record(repo, target, stage, None if repo.key_file else repo.url + name)
    return text


def _record(repo: Repo, path: Path, stage: Path, url: Optional[str]) -> None:
    data_hash = files._hash_file(path)
    repo.files[path.relative_to(stage).as_posix()] = {"size": path.stat().st_size, "sha256": data_hash, "url": url}


def _apt_index(repo: Repo, fetch: Fetcher, key: str) -> list[Entry]:
    with tempfile.TemporaryDirectory(prefix="aifactory-index-") as work:
        inrelease = Path(work) / "InRelease"
        inrelease.write_bytes(fetch.get(repo.url + "InRelease", 16 * 1024 * 1024))
        repo.signer, signed = _gpgv(key, inrelease, None, None if repo.key_file else repo.key_id,
                                    repo.url + "InRelease")
    repo.index_signed = True
    release = _fields(signed.decode("utf-8", "replace"))
    date = release.get("Date", "")
    if re.fullmatch(r"[A-Za-z0-9 ,:+-]{1,64}", date):
        repo.date = date
    sums = {}
    for line in release.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            sums[parts[2]] = (parts[0].lower(), int(parts[1]))
    for name in ("Packages.gz", "Packages.xz", "Packages"):
        if name in sums:
            data = fetch.get(repo.url + name)
            _check(data, sums[name][0], repo.url + name)
            text = _decompress(data, name).decode("utf-8")
            return parse_packages(text, DEB_ARCHES[repo.cpu_arch])
    raise AifactoryError(f"{repo.url}InRelease: lists no Packages index with a SHA256")


def _dnf_index(repo: Repo, fetch: Fetcher, key: str) -> tuple[list[Entry], Optional[bytes]]:
    repomd = fetch.get(repo.url + "repodata/repomd.xml", 16 * 1024 * 1024)
    if fetch.exists(repo.url + "repodata/repomd.xml.asc"):
        with tempfile.TemporaryDirectory(prefix="aifactory-index-") as work:
            (Path(work) / "repomd.xml").write_bytes(repomd)
            (Path(work) / "repomd.xml.asc").write_bytes(fetch.get(repo.url + "repodata/repomd.xml.asc", 1 << 20))
            repo.signer, _ = _gpgv(key, Path(work) / "repomd.xml.asc", Path(work) / "repomd.xml",
                                   None if repo.key_file else repo.key_id, repo.url + "repodata/repomd.xml")
        repo.index_signed = True
    root = ET.fromstring(repomd)
    data = {}
    for d in root.findall("r:data", _RPM_NS):
        loc, checksum = d.find("r:location", _RPM_NS), d.find("r:checksum", _RPM_NS)
        if loc is not None and checksum is not None and checksum.get("type") == "sha256":
            data[d.get("type")] = (loc.get("href", ""), checksum.text.strip())
    if "primary" not in data:
        raise AifactoryError(f"{repo.url}repodata/repomd.xml: lists no primary metadata with a sha256")
    href, digest = data["primary"]
    raw = fetch.get(repo.url + _relpath(href))
    _check(raw, digest, repo.url + href)
    entries = parse_primary(_decompress(raw, href), RPM_ARCHES[repo.cpu_arch])
    modules = None
    if "modules" in data:
        href, digest = data["modules"]
        raw = fetch.get(repo.url + _relpath(href))
        _check(raw, digest, repo.url + href)
        modules = _decompress(raw, href)
    return entries, modules


def _rpm_signatures(key: str, rpms: list[Path], what: str) -> None:
    """Every RPM signed by the repository key (rpmkeys in a private database)."""
    with tempfile.TemporaryDirectory(prefix="aifactory-rpmdb-") as work:
        keyfile = Path(work) / "key.asc"
        keyfile.write_text(key)
        rpmkeys = _tool("rpmkeys", "rpm")
        base = [rpmkeys, "--dbpath", str(Path(work) / "db")]
        proc = subprocess.run([*base, "--import", str(keyfile)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise AifactoryError(f"{what}: the repository key cannot be imported: {proc.stderr.strip()[:200]}")
        for rpm in rpms:
            proc = subprocess.run([*base, "--checksig", str(rpm)], capture_output=True, text=True)
            if proc.returncode != 0 or "signatures OK" not in proc.stdout:
                raise AifactoryError(f"{what}: {rpm.name}: not signed by the repository key: "
                                     f"{(proc.stdout + proc.stderr).strip()[:200]}")


def _write_apt_index(repo: Repo, chosen: list[Entry], stage: Path, origin: str) -> None:
    """Flat ``Packages``, ``Packages.gz`` and an unsigned ``Release``, dated as the upstream one
    (so the same lock from the same upstream always gets the same bytes)."""
    folder = stage / repo.rel
    text = "\n\n".join(e.raw for e in sorted(chosen, key=lambda e: (e.name, e.arch, e.version))) + "\n"
    packages = text.encode()
    gz = gzip.compress(packages, mtime=0)
    (folder / "Packages").write_bytes(packages)
    (folder / "Packages.gz").write_bytes(gz)
    lines = [f"Origin: {origin}", f"Label: {origin}", *([f"Date: {repo.date}"] if repo.date else []),
             f"Architectures: {' '.join(DEB_ARCHES[repo.cpu_arch])}",
             "SHA256:"]
    for name, data in (("Packages", packages), ("Packages.gz", gz)):
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (folder / "Release").write_text("\n".join(lines) + "\n")
    for name in ("Packages", "Packages.gz", "Release"):
        _record(repo, folder / name, stage, None)


def _write_dnf_index(repo: Repo, stage: Path, modules: Optional[bytes]) -> None:
    folder = stage / repo.rel
    _run([_tool("createrepo_c", "createrepo-c"), "--quiet", "--no-database", "--excludes", "*.pub", str(folder)])
    if modules is not None:
        with tempfile.TemporaryDirectory(prefix="aifactory-modules-") as work:
            path = Path(work) / "modules.yaml"
            path.write_bytes(modules)
            _run([_tool("modifyrepo_c", "createrepo-c"), "--mdtype=modules", str(path),
                  str(folder / "repodata")])
    for path in sorted((folder / "repodata").iterdir()):
        _record(repo, path, stage, None)


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AifactoryError(f"{Path(argv[0]).name} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")


def _mirror_repo(repo: Repo, wanted: dict[str, software.Package], fetch: Fetcher, stage: Path,
                 previous: Path, origin: str) -> None:
    key = _key(repo, fetch, stage)
    modules = None
    if repo.rpm:
        entries, modules = _dnf_index(repo, fetch, key)
    else:
        entries = _apt_index(repo, fetch, key)
    chosen, why, repo.external = select(entries, wanted, repo.rpm)
    fetched_rpms = []
    for entry in sorted(chosen.values(), key=lambda e: e.path):
        rel = f"{repo.rel}/{entry.path}"
        target = stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        old = previous / rel
        url = repo.url + urllib.parse.quote(entry.path)
        if old.is_file() and not old.is_symlink() and old.stat().st_size == entry.size \
                and files._hash_file(old) == entry.sha256:
            os.link(old, target)  # kept: the same bytes, verified again
        else:
            fetch.download(url, target, entry.size, entry.sha256)
            if repo.rpm:
                fetched_rpms.append(target)
        repo.files[rel] = {"size": entry.size, "sha256": entry.sha256, "url": url}
        repo.packages.append({"name": entry.name, "version": entry.version, "arch": entry.arch, "path": rel,
                              "for": why[entry.name]})
    if repo.rpm:
        # Every RPM is checked, kept ones too: the check is cheap next to a download.
        _rpm_signatures(key, [stage / f"{repo.rel}/{e.path}" for e in chosen.values()], repo.url)
        _write_dnf_index(repo, stage, modules)
    else:
        _write_apt_index(repo, list(chosen.values()), stage, origin)


# --- the bundle ------------------------------------------------------------------------------

@dataclass
class MirrorResult:
    out: Path
    manifest: dict
    downloaded: list[str]
    kept: int


def repositories(plan: Plan, catalog: Catalog, upstream: dict[str, str], keys: dict[str, Path]) -> list[Repo]:
    lock = plan.software
    if lock.driver is None:
        raise AifactoryError("the plan has no NVIDIA pool: its lock pins no NVIDIA package to mirror")
    for option, given in (("--upstream", upstream), ("--key", keys)):
        for os_id in given:
            if os_id != lock.os:
                raise AifactoryError(f"{option} {os_id}: the plan's nodes run {lock.os}, not {os_id}")
    base, key_ids = _role_data()
    folder = REPO_FOLDERS.get(lock.os)
    if folder is None or folder not in key_ids:
        raise AifactoryError(f"NVIDIA's repository does not serve {lock.os}")
    arches = sorted({p.cpu_arch for p in plan.pools if catalog.systems[p.system].gpu.vendor == "nvidia"})
    url = upstream.get(lock.os, base)
    return [Repo(lock.os, arch, f"{url}/{folder}/{ARCH_FOLDERS[arch]}/", f"{folder}/{ARCH_FOLDERS[arch]}",
                 key_ids[folder], keys.get(lock.os)) for arch in arches]


def mirror(plan: Plan, out: Path | str, *, upstream: Optional[dict[str, str]] = None,
           keys: Optional[dict[str, Path]] = None, catalog: Optional[Catalog] = None,
           force: bool = False) -> MirrorResult:
    """Write the bundle of ``plan``'s lock into ``out`` (see the module docstring)."""
    from .catalog import load as load_catalog
    from .catalog import using

    with using(plan.catalog_overlay):
        catalog = catalog or load_catalog()
        digest = plan.software.digest  # what the nodes report and `status` compares
        wanted_all = software.packages(plan.software, catalog)
        wanted = {c: wanted_all[c] for c in INSTALLED if c in wanted_all}
        repos = repositories(plan, catalog, upstream or {}, keys or {})
    root = Path(out)
    fetch = Fetcher()
    with files.Folder(root, OWNER_MANIFEST, force=force) as folder:
        created = folder.created
        try:
            folder.refuse_foreign()
            folder.clean_temporary()
            old_manifest = _old_manifest(root)
            owned = {r["path"].split("/")[0] for r in old_manifest.get("repositories", []) if isinstance(r, dict)
                     and isinstance(r.get("path"), str)}
            for repo in repos:
                top = repo.rel.split("/")[0]
                if (root / top).exists() and top not in owned:
                    raise AifactoryError(f"{root / top}: exists and was not written by aifactory mirror; "
                                         "move it away or choose another --out")
            stage = Path(tempfile.mkdtemp(prefix=files.TMP_PREFIX + "mirror-", dir=root))
            try:
                for repo in repos:
                    _mirror_repo(repo, wanted, fetch, stage, root, f"aifactory {plan.name}")
                manifest = _manifest(plan, digest, repos)
                _swap(root, stage, repos)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
            folder.write(MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
            folder.write_manifest({"input": digest, "files": {MANIFEST: folder.hash(MANIFEST)}})
        except BaseException:
            if created:
                _remove_if_empty(root)
            raise
    kept = sum(len(r.packages) for r in repos) - len(fetch.downloaded)
    return MirrorResult(root, manifest, list(fetch.downloaded), kept)


def _old_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file() or path.is_symlink():
        return {}
    try:
        data = files.read_json(path)
    except AifactoryError:
        return {}
    return data if isinstance(data, dict) else {}


def _swap(root: Path, stage: Path, repos: list[Repo]) -> None:
    """Each repository folder of the stage into place: the old one is renamed aside first (a
    temporary name the next run removes if this one is killed), then the new one renamed in."""
    for top in sorted({r.rel.split("/")[0] for r in repos}):
        target = root / top
        aside = None
        if target.exists() or target.is_symlink():
            if target.is_symlink() or not target.is_dir():
                raise AifactoryError(f"{target}: is not a folder; refusing to replace it")
            aside = Path(tempfile.mkdtemp(prefix=files.TMP_PREFIX + "old-", dir=root))
            os.rename(target, aside / top)
        os.rename(stage / top, target)
        files._fsync_dir(root)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def _remove_if_empty(root: Path) -> None:
    try:
        leftovers = [n for n in os.listdir(root)]
        if not leftovers:
            root.rmdir()
    except OSError:
        pass


def _manifest(plan: Plan, digest: str, repos: list[Repo]) -> dict:
    all_files = {}
    for repo in repos:
        all_files.update(repo.files)
    return {
        "schema": 1,
        "factory": plan.name,
        "os": plan.software.os,
        "lock_digest": digest,
        "repositories": [{
            "path": r.rel, "os": r.os_id, "arch": r.cpu_arch, "format": "dnf" if r.rpm else "apt",
            "upstream": r.url, "key": f"{r.key_id}.pub", "signer": r.signer, "index_signed": r.index_signed,
            "packages": sorted(r.packages, key=lambda p: p["name"]), "external": r.external,
        } for r in repos],
        "files": dict(sorted(all_files.items())),
    }
