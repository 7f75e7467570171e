"""Local package repositories shaped like NVIDIA's CUDA repositories, built from the catalog.

Neither NVIDIA's repositories nor Ubuntu's or RHEL's archives are reachable from the test
machines, so the install paths run against stand-ins built here with Debian's own tools:

- :func:`nvidia_stubs` lists, for one node OS, every package NVIDIA's repository must hold for
  any lock the catalog can produce: every driver branch's release (driver userspace, kernel
  modules and metapackages, fabric manager, NSCQ, IMEX, NVLSM), every CUDA toolkit, every NCCL
  build and every DCGM package. The names that the catalog owns (table ``packages``) are read from
  it through :func:`aifactory.plan.software.package_name`, the headless driver's per-OS split
  included; what each of those packages ships (nvidia-smi, the persistence daemon's unit) is
  :data:`PAYLOAD`.
- :func:`os_stubs` is the part of the node's own archive that the roles reach for (kernel headers,
  DKMS, infiniband-diags): the node's kernel is not the test machine's, so these are stand-ins too.
- :func:`build_apt` writes a flat, signed apt repository (``dpkg-deb``, ``apt-ftparchive``, ``gpg``)
  laid out as NVIDIA's ``<distro>/<arch>/`` folders are; :func:`build_dnf` writes a signed dnf
  repository (``rpmbuild``, ``rpmsign``, ``createrepo_c``) with the ``nvidia-driver`` module
  streams in its ``modules.yaml`` (``modifyrepo_c``).
- :func:`serve` serves a folder on loopback over HTTP, where the chroot's apt and dnf fetch it.

Packages carry real names, versions, dependencies and conflicts; their payload is a marker file
(plus the systemd units the roles enable), so installing one proves the name and version resolved.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from aifactory.catalog import Catalog
from aifactory.plan.software import os_family, package_name, package_row

KEY_NAME = "aifactory stand-in repository key"
# The stand-in key is served under the file name of NVIDIA's key for each repository folder (the
# nvidia_repository role's table), so the role's own download and signed-by paths are exercised.
_ROLE_VARS = Path(__file__).resolve().parents[2] / "playbooks/roles/nvidia_repository/vars/main.yml"
KEYS = yaml.safe_load(_ROLE_VARS.read_text())["_nvidia_repository_keys"]
# The node archive's stand-in is signed by the same key, served as archive.pub.
ARCHIVE_KEY = "archive.pub"

# NVIDIA's folder per node OS, as the nvidia_repository role computes it.
REPO_FOLDERS = {"ubuntu-22.04": "ubuntu2204", "ubuntu-24.04": "ubuntu2404", "debian-12": "debian12",
                "debian-13": "debian13", "rhel-9": "rhel9"}

# Version suffixes NVIDIA's repositories use for the driver: 580.95.05-0ubuntu1 (Ubuntu),
# 580.95.05-1 (Debian), 3:580.95.05-1.el9 (RHEL, epoch 3).
DEB_REVISION = {"ubuntu": "0ubuntu1", "debian": "1"}
RPM_EPOCH, RPM_RELEASE = 3, "1.el9"

# NVLSM has date-based versions of its own (nvlsm 2025.06.1 alongside R580).
NVLSM_VERSION = "2025.06.1"
# DCGM 4 and its exporter: versions of their own, epoch 1 on apt (datacenter-gpu-manager-4-core
# 1:4.4.1-1), unpinned by the dcgm role unless dcgm_version is set.
DCGM_VERSION = {3: "3.3.9", 4: "4.4.1"}
DCGM_EXPORTER_VERSION = "4.4.1-4.5.0"


@dataclass(frozen=True)
class Stub:
    """One package: real name, version and relations; a marker file and the units it ships."""

    name: str
    version: str  # upstream version
    release: str  # Debian revision or RPM release
    epoch: int = 0
    depends: tuple[tuple[str, str, str], ...] = ()  # (name, op, version) with op "" for any version
    conflicts: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    units: tuple[str, ...] = ()  # systemd services the package ships
    commands: tuple[str, ...] = ()  # /usr/bin commands (a script that prints the version)

    @property
    def deb_version(self) -> str:
        return (f"{self.epoch}:" if self.epoch else "") + f"{self.version}-{self.release}"

    def full(self, family: str) -> str:
        return self.deb_version if family == "debian" else (
            (f"{self.epoch}:" if self.epoch else "") + f"{self.version}-{self.release}")


@dataclass(frozen=True)
class Stream:
    """A dnf module stream: nvidia-driver:<branch>-open and its default profile."""

    module: str
    stream: str
    profile: tuple[str, ...]
    artifacts: tuple[Stub, ...]


@dataclass
class Repository:
    family: str  # debian or redhat
    stubs: list[Stub] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)

    def names(self) -> set[str]:
        return {s.name for s in self.stubs}


# What the headless driver's packages ship, by catalog component: nvidia-smi, the persistence
# daemon and its unit (which the nvidia_driver role enables).
PAYLOAD = {
    "driver_utils": {"commands": ("nvidia-smi",)},
    "driver_persistenced": {"commands": ("nvidia-persistenced",), "units": ("nvidia-persistenced",)},
    "driver_libs": {},
    "driver_kernel": {},
    "driver_kernel_open": {},
}


def family(os_id: str) -> str:
    return os_family(os_id)


def _driver(catalog: Catalog, os_id: str, branch: str, version: str) -> tuple[list[Stub], list[Stream]]:
    """One driver release for ``os_id``: every name the catalog gives it, with relations."""
    fam = family(os_id)
    epoch, release = (RPM_EPOCH, RPM_RELEASE) if fam == "redhat" else (
        0, DEB_REVISION["ubuntu" if os_id.startswith("ubuntu") else "debian"])

    def stub(component: str, **kw) -> Stub | None:
        row = package_row(catalog, component, os_id, branch)
        if row is None:
            return None
        if "{branch}" in row.name:
            # A name that carries the branch stands for one of several alternatives: it provides and
            # conflicts with the name without it (Debian policy 7.6.2), so a new branch, whose
            # package has that name from R590 on Ubuntu, replaces the old one.
            virtual = row.name.replace("-{branch}", "")
            kw = dict(kw, provides=(virtual,), conflicts=(*kw.get("conflicts", ()), virtual))
        return Stub(package_name(catalog, component, os_id, branch), version, release, epoch, **kw)

    headless = {c: stub(c, **PAYLOAD[c]) for c in PAYLOAD}
    smi, persistenced, libs = headless["driver_utils"], headless["driver_persistenced"], headless["driver_libs"]
    # nvidia-smi needs the libraries of its own version; the two kernel flavours exclude each other.
    smi = headless["driver_utils"] = Stub(**{**smi.__dict__, "depends": ((libs.name, "=", libs.full(fam)),)})
    kernel, kernel_open = headless["driver_kernel"], headless["driver_kernel_open"]
    headless["driver_kernel"] = Stub(**{**kernel.__dict__, "conflicts": (*kernel.conflicts, kernel_open.name)})
    headless["driver_kernel_open"] = Stub(**{**kernel_open.__dict__, "conflicts": (*kernel_open.conflicts, kernel.name)})
    userspace = [smi, persistenced, libs]
    stubs = list(headless.values())
    metas = {}
    for component, kmod in (("driver", headless["driver_kernel"]), ("driver_open", headless["driver_kernel_open"])):
        meta = stub(component, depends=tuple((p.name, "=", p.full(fam)) for p in (*userspace, kmod)))
        if meta:
            metas[component] = meta
            stubs.append(meta)
    streams = []
    for component, kmod in (("driver_stream", headless["driver_kernel"]),
                            ("driver_open_stream", headless["driver_kernel_open"])):
        name = package_name(catalog, component, os_id, branch)
        if name:
            module, stream = name.split(":", 1)
            meta = metas.get(component.replace("_stream", ""))
            members = (*userspace, kmod, *([meta] if meta else []))
            streams.append(Stream(module, stream, tuple(p.name for p in (*userspace, kmod)), members))
    # Fabric manager, NSCQ and IMEX: the driver's exact version (NVIDIA FM and IMEX guides).
    for component, units in (("fabric_manager", ("nvidia-fabricmanager",)), ("nscq", ()), ("imex", ("nvidia-imex",))):
        made = stub(component, units=units)
        if made:
            stubs.append(made)
    return stubs, streams


def nvidia_stubs(catalog: Catalog, os_id: str) -> Repository:
    """Every package NVIDIA's repository for ``os_id`` must hold for any lock of ``catalog``."""
    fam = family(os_id)
    repo = Repository(fam)
    for branch in sorted(catalog.branches, key=int):
        row = catalog.branches[branch]
        if not row.latest:
            continue
        stubs, streams = _driver(catalog, os_id, branch, row.latest)
        repo.stubs += stubs
        repo.streams += streams
        nvlsm = package_name(catalog, "nvlsm", fam, branch)
        if nvlsm and nvlsm not in repo.names():
            repo.stubs.append(Stub(nvlsm, NVLSM_VERSION, "1", depends=(("infiniband-diags", "", ""),)))
    rev = "1"
    for cuda in catalog.rows["cuda"]:
        major, minor = cuda.cuda.split(".")[:2]
        name = package_name(catalog, "cuda_toolkit", fam, max(catalog.branches, key=int), cuda.cuda)
        if name:
            repo.stubs.append(Stub(name, f"{major}.{minor}.0", rev, commands=()))
    for nccl in catalog.rows["nccl"]:
        upstream, nccl_rev = nccl.version.split("-", 1)
        release = f"{nccl_rev}+cuda{nccl.cuda_build}"
        lib = package_name(catalog, "nccl", fam, max(catalog.branches, key=int))
        dev = package_name(catalog, "nccl_dev", fam, max(catalog.branches, key=int))
        repo.stubs.append(Stub(lib, upstream, release))
        repo.stubs.append(Stub(dev, upstream, release, depends=((lib, "=", f"{upstream}-{release}"),)))
    seen = set()
    for dcgm in catalog.rows["dcgm"]:
        if dcgm.package in seen:
            continue
        seen.add(dcgm.package)
        units = ("nvidia-dcgm",)
        repo.stubs.append(Stub(dcgm.package, DCGM_VERSION[dcgm.dcgm_major], "1", epoch=1, units=units,
                               conflicts=("datacenter-gpu-manager",) if dcgm.dcgm_major >= 4 else ()))
    exporter, exporter_rev = DCGM_EXPORTER_VERSION.split("-", 1)
    repo.stubs.append(Stub("datacenter-gpu-manager-exporter", exporter, exporter_rev, epoch=1,
                           units=("nvidia-dcgm-exporter",)))
    return repo


def os_stubs(os_id: str, kernel: str) -> Repository:
    """The node archive's packages the roles install beside NVIDIA's: the running kernel's headers
    and extra modules, DKMS and infiniband-diags (NVLSM's tools)."""
    fam = family(os_id)
    if fam == "redhat":
        names = [f"kernel-devel-{kernel}", f"kernel-headers-{kernel}", "dkms", "infiniband-diags"]
    else:
        names = [f"linux-headers-{kernel}", "dkms", "infiniband-diags"]
        if os_id.startswith("ubuntu"):
            names.append(f"linux-modules-extra-{kernel}")
    return Repository(fam, [Stub(n, "1.0", "1") for n in names])


# -- building ---------------------------------------------------------------------------------

def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc


def signing_key(home: Path) -> Path:
    """A fresh RSA signing key in a gpg home of its own; returns the armoured public key."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    _run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
          "--quick-gen-key", KEY_NAME, "rsa2048", "sign", "never"])
    public = home / "public.asc"
    public.write_text(_run(["gpg", "--homedir", str(home), "--armor", "--export", KEY_NAME]).stdout)
    return public


def _script(stub: Stub, command: str) -> str:
    return f"#!/bin/sh\n# stand-in for {command} from {stub.name}\necho '{command} {stub.version}'\n"


def _unit(stub: Stub, unit: str) -> str:
    return (f"[Unit]\nDescription=stand-in {unit} from {stub.name}\n\n[Service]\nExecStart=/bin/true\n\n"
            "[Install]\nWantedBy=multi-user.target\n")


def _deb_relation(name: str, op: str, version: str) -> str:
    return f"{name} ({op} {version})" if op else name


def build_apt(repo: Repository, out: Path, gpg_home: Path, key_file: str, *, origin: str = "aifactory-stand-in") -> Path:
    """A flat apt repository of ``repo`` in ``out``: Packages, signed Release/InRelease, the key."""
    out.mkdir(parents=True, exist_ok=True)
    for stub in repo.stubs:
        _deb_file(stub, out / f"{stub.name}_{stub.deb_version.replace(':', '%3a')}_amd64.deb")
    packages = _run(["apt-ftparchive", "packages", "."], cwd=out).stdout
    (out / "Packages").write_text(packages)
    with gzip.open(out / "Packages.gz", "wt") as handle:
        handle.write(packages)
    release = _run(["apt-ftparchive", "-o", f"APT::FTPArchive::Release::Origin={origin}",
                    "-o", f"APT::FTPArchive::Release::Label={origin}", "release", "."], cwd=out).stdout
    (out / "Release").write_text(release)
    gpg = ["gpg", "--homedir", str(gpg_home), "--batch", "--yes", "--local-user", KEY_NAME]
    _run([*gpg, "--clearsign", "-o", str(out / "InRelease"), str(out / "Release")])
    _run([*gpg, "--armor", "--detach-sign", "-o", str(out / "Release.gpg"), str(out / "Release")])
    shutil.copyfile(gpg_home / "public.asc", out / key_file)
    return out


def _rpm_relation(name: str, op: str, version: str) -> str:
    return f"{name} {op} {version}" if op else name


def _spec(stubs: list[Stub]) -> str:
    """One spec file for stubs that share version, release and epoch (main package + subpackages)."""
    first = stubs[0]
    lines = [f"Name: {first.name}", f"Version: {first.version}", f"Release: {first.release}",
             "Summary: stand-in", "License: none", "BuildArch: x86_64",
             # The tree's rpm database is empty: /bin/sh is there, but no package provides it.
             "AutoReqProv: no"]
    if first.epoch:
        lines.append(f"Epoch: {first.epoch}")
    install = ["%install"]
    files = []
    for index, stub in enumerate(stubs):
        suffix = "" if index == 0 else f" -n {stub.name}"
        if index:
            lines += [f"%package -n {stub.name}", "Summary: stand-in", "AutoReqProv: no"]
        lines += [f"Requires: {_rpm_relation(*d)}" for d in stub.depends]
        lines += [f"Conflicts: {c}" for c in stub.conflicts]
        lines += [f"Provides: {p}" for p in stub.provides]
        lines += [f"%description{suffix}", f"stand-in for {stub.name}", ""]
        paths = [f"/usr/share/aifactory-stand-in/{stub.name}"]
        install.append(f"mkdir -p %{{buildroot}}/usr/share/aifactory-stand-in %{{buildroot}}/usr/bin "
                       f"%{{buildroot}}/usr/lib/systemd/system")
        install.append(f"echo '{stub.full('redhat')}' > %{{buildroot}}/usr/share/aifactory-stand-in/{stub.name}")
        for command in stub.commands:
            install.append(f"printf '#!/bin/sh\\necho {command} {stub.version}\\n' > %{{buildroot}}/usr/bin/{command}")
            install.append(f"chmod 755 %{{buildroot}}/usr/bin/{command}")
            paths.append(f"/usr/bin/{command}")
        for unit in stub.units:
            install.append(f"printf '[Unit]\\nDescription=stand-in {unit}\\n[Service]\\nExecStart=/bin/true\\n"
                           f"[Install]\\nWantedBy=multi-user.target\\n' > %{{buildroot}}/usr/lib/systemd/system/{unit}.service")
            paths.append(f"/usr/lib/systemd/system/{unit}.service")
        files += [f"%files{suffix}", *paths, ""]
    return "\n".join(lines + install + [""] + files) + "\n"


def _modules_yaml(repo: Repository) -> str:
    documents = []
    for stream in repo.streams:
        documents.append({"document": "modulemd", "version": 2, "data": {
            "name": stream.module, "stream": stream.stream, "version": 1, "context": "00000000",
            "arch": "x86_64", "summary": f"{stream.module} {stream.stream}", "description": "stand-in",
            "license": {"module": ["MIT"]},
            "profiles": {"default": {"rpms": list(stream.profile)}},
            "artifacts": {"rpms": sorted(f"{s.name}-{s.epoch}:{s.version}-{s.release}.x86_64"
                                         for s in stream.artifacts)}}})
    modules = sorted({s.module for s in repo.streams})
    for module in modules:
        documents.append({"document": "modulemd-defaults", "version": 1, "data": {
            "module": module,
            "profiles": {s.stream: ["default"] for s in repo.streams if s.module == module}}})
    return yaml.safe_dump_all(documents, explicit_start=True, sort_keys=False)


def build_dnf(repo: Repository, out: Path, gpg_home: Path, key_file: str) -> Path:
    """A dnf repository of ``repo`` in ``out``: signed RPMs, repodata, modules.yaml and the key."""
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple, list[Stub]] = {}
    for stub in repo.stubs:
        groups.setdefault((stub.version, stub.release, stub.epoch), []).append(stub)
    work = Path(tempfile.mkdtemp(prefix="rpms-"))
    try:
        for index, stubs in enumerate(groups.values()):
            spec = work / f"stub-{index}.spec"
            spec.write_text(_spec(stubs))
            _run(["rpmbuild", "-bb", "--quiet", "--define", f"_topdir {work / 'top'}",
                  "--define", "_build_id_links none", "--define", "__os_install_post %{nil}",
                  "--define", f"_rpmdir {out}", "--define", "_rpmfilename %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
                  str(spec)])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rpms = sorted(str(p) for p in out.glob("*.rpm"))
    _run(["rpmsign", "--addsign", "--define", f"_gpg_name {KEY_NAME}", "--define", f"_gpg_path {gpg_home}",
          "--define", f"__gpg {shutil.which('gpg') or 'gpg'}", *rpms])
    _run(["createrepo_c", "--quiet", str(out)])
    if repo.streams:
        modules = out / "modules.yaml"
        modules.write_text(_modules_yaml(repo))
        _run(["modifyrepo_c", "--mdtype=modules", str(modules), str(out / "repodata")])
        modules.unlink()
    shutil.copyfile(gpg_home / "public.asc", out / key_file)
    return out


# -- serving ----------------------------------------------------------------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # apt and dnf fetch dozens of files; keep pytest's output clean
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on 127.0.0.1 (a chroot shares the host's loopback); yields the URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- GDRCopy's redist folder ------------------------------------------------------------------
# NVIDIA publishes GDRCopy as plain package files, not as a repository, one folder per CUDA major,
# OS and architecture, named as its index lists them (checked 2026-12-03):
# https://developer.download.nvidia.com/compute/redist/gdrcopy/CUDA%2013.0/ubuntu24_04/aarch64/ holds
# gdrdrv-dkms_2.6-1_arm64.Ubuntu24_04.deb, libgdrapi_..., gdrcopy_... and
# gdrcopy-tests_2.6-1_arm64.Ubuntu24_04+cuda13.0.deb; .../CUDA%2013.0/rhel10/aarch64/ holds
# gdrcopy-kmod-2.6-1dkms.el10.noarch.rpm, gdrcopy-2.6-1.el10.aarch64.rpm and gdrcopy-devel-2.6-1.el10.noarch.rpm.
# The stand-in spells the names out here, apart from the inventory that computes them, so a wrong
# name there fails the download. Debian has no folder: its nodes take the Ubuntu 22.04 build.
REDIST_OS = {"ubuntu-22.04": ("ubuntu22_04", "Ubuntu22_04"), "ubuntu-24.04": ("ubuntu24_04", "Ubuntu24_04"),
             "debian-12": ("ubuntu22_04", "Ubuntu22_04"), "debian-13": ("ubuntu22_04", "Ubuntu22_04"),
             "rhel-9": ("rhel9", "el9")}


def gdrcopy_redist(catalog: Catalog, os_id: str) -> dict[str, list[tuple[str, Stub]]]:
    """Folder (as the redist URL spells it, ``CUDA 13.0/ubuntu24_04/x64``) -> the files of every
    catalogued GDRCopy release for ``os_id`` on x86_64, each with the package it holds: the
    packages' real names, versions and dependencies (NVIDIA/gdrcopy packages/*/control and
    gdrcopy.spec: the gdrcopy metapackage requires the others at its exact version)."""
    folder, platform = REDIST_OS[os_id]
    out: dict[str, list[tuple[str, Stub]]] = {}
    for row in catalog.rows["gdrcopy"]:
        v, rev = row.version, str(row.revision)
        full = f"{v}-{rev}"
        if family(os_id) == "redhat":
            files = [(f"gdrcopy-kmod-{full}dkms.{platform}.noarch.rpm",
                      Stub("gdrcopy-kmod", v, f"{rev}dkms", depends=(("dkms", "", ""),))),
                     (f"gdrcopy-{full}.{platform}.x86_64.rpm", Stub("gdrcopy", v, rev, commands=("gdrcopy_sanity",))),
                     (f"gdrcopy-devel-{full}.{platform}.noarch.rpm",
                      Stub("gdrcopy-devel", v, rev, depends=(("gdrcopy", "=", full),)))]
        else:
            files = [(f"gdrdrv-dkms_{full}_amd64.{platform}.deb", Stub("gdrdrv-dkms", v, rev, depends=(("dkms", "", ""),))),
                     (f"libgdrapi_{full}_amd64.{platform}.deb", Stub("libgdrapi", v, rev)),
                     (f"gdrcopy-tests_{full}_amd64.{platform}+cuda{row.cuda_major}.0.deb",
                      Stub("gdrcopy-tests", v, rev, depends=(("libgdrapi", ">=", full),), commands=("gdrcopy_sanity",))),
                     (f"gdrcopy_{full}_amd64.{platform}.deb",
                      Stub("gdrcopy", v, rev, depends=tuple((n, "=", full) for n in ("gdrdrv-dkms", "libgdrapi",
                                                                                      "gdrcopy-tests"))))]
        out.setdefault(f"CUDA {row.cuda_major}.0/{folder}/x64", []).extend(files)
    return out


def _deb_file(stub: Stub, path: Path) -> None:
    """One .deb of ``stub`` at ``path``: its relations, commands, units and marker file."""
    with tempfile.TemporaryDirectory(prefix="deb-") as work:
        tree = Path(work) / stub.name
        (tree / "DEBIAN").mkdir(parents=True)
        fields = {
            "Package": stub.name, "Version": stub.deb_version, "Architecture": "amd64",
            "Maintainer": "aifactory <root@localhost>", "Section": "misc", "Priority": "optional",
            "Depends": ", ".join(_deb_relation(*d) for d in stub.depends),
            "Conflicts": ", ".join(stub.conflicts), "Replaces": ", ".join(stub.conflicts),
            "Provides": ", ".join(stub.provides),
            "Description": f"stand-in for {stub.name}",
        }
        (tree / "DEBIAN/control").write_text("".join(f"{k}: {v}\n" for k, v in fields.items() if v))
        for command in stub.commands:
            script = tree / "usr/bin" / command
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text(_script(stub, command))
            script.chmod(0o755)
        for unit in stub.units:
            service = tree / "lib/systemd/system" / f"{unit}.service"
            service.parent.mkdir(parents=True, exist_ok=True)
            service.write_text(_unit(stub, unit))
        marker = tree / "usr/share/aifactory-stand-in" / stub.name
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(stub.deb_version + "\n")
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(tree), str(path)])


def _rpm_file(stub: Stub, path: Path) -> None:
    """One unsigned .rpm of ``stub`` at ``path`` (the same package shape as :func:`build_dnf` writes)."""
    with tempfile.TemporaryDirectory(prefix="rpm-") as work:
        spec = Path(work) / "stub.spec"
        spec.write_text(_spec([stub]))
        _run(["rpmbuild", "-bb", "--quiet", "--define", f"_topdir {Path(work) / 'top'}",
              "--define", "_build_id_links none", "--define", "__os_install_post %{nil}",
              "--define", f"_rpmdir {work}", "--define", "_rpmfilename built.rpm", str(spec)])
        shutil.move(str(Path(work) / "built.rpm"), str(path))


def build_redist(files: dict[str, list[tuple[str, Stub]]], out: Path, pkg_family: str) -> Path:
    """The plain files of ``files`` (see :func:`gdrcopy_redist`) under ``out``, folder by folder,
    as a web server lists them: no Packages index, no repodata, no signature."""
    for folder, entries in files.items():
        target = out / folder
        target.mkdir(parents=True, exist_ok=True)
        for name, stub in entries:
            if not (target / name).exists():  # Debian 12 and 13 share the Ubuntu 22.04 folder
                (_rpm_file if pkg_family == "redhat" else _deb_file)(stub, target / name)
    return out
