"""Which kernel to boot: a Debian package (by suite or exact version) or a bzImage plus a
modules directory. Packages are fetched once into the cache and unpacked there."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .aptfetch import PrivateApt
from .errors import UserError

DEBIAN_SUITES = {"sid": "sid", "unstable": "sid", "experimental": "experimental",
                 "trixie": "trixie", "bookworm-backports": "bookworm-backports",
                 "bookworm": "bookworm"}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    d = Path(base) / "ublkcheck"
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class Kernel:
    spec: str                   # what the user asked for
    release: str                # uname -r of the guest, e.g. 7.2.13+deb14-amd64
    vmlinuz: Path
    modules: Path               # directory whose name is `release` (holds kernel/, modules.dep)
    package_version: str = ""   # Debian package version, when from a package
    notes: list[str] = field(default_factory=list)
    pvh: Path | None = None     # vmlinuz's own vmlinux, booted by PVH entry (pvh.py)


@dataclass
class KernelSpec:
    kind: str        # "debian" or "path"
    suite: str = ""  # debian: suite name, or "" with version set
    version: str = ""
    path: str = ""


def parse_spec(spec: str) -> KernelSpec:
    if spec.startswith("debian:"):
        what = spec[len("debian:"):]
        if what in DEBIAN_SUITES:
            return KernelSpec("debian", suite=DEBIAN_SUITES[what])
        if re.fullmatch(r"\d+\.\d+[\w.~+:-]*", what):
            return KernelSpec("debian", version=what)
        raise UserError(f"--kernel {spec}: unknown Debian suite or version (expected one of "
                        f"{', '.join('debian:' + s for s in DEBIAN_SUITES)} or debian:<package "
                        "version> like debian:7.2.13-1)")
    if "/" in spec or spec.endswith(("bzImage", "vmlinuz")) or Path(spec).exists():
        return KernelSpec("path", path=spec)
    raise UserError(f"--kernel {spec}: expected debian:<suite|version> or a path to a bzImage "
                    "(with --modules DIR)")


def find_layout(root: Path) -> tuple[Path, Path]:
    """(vmlinuz, modules dir) inside an unpacked Debian kernel: sid keeps both under
    usr/lib/modules/<rel>/, older packages use /boot/vmlinuz-<rel> and lib/modules/<rel>."""
    for mods_base in (root / "usr/lib/modules", root / "lib/modules"):
        if not mods_base.is_dir():
            continue
        for d in sorted(mods_base.iterdir()):
            if not (d / "kernel").is_dir():
                continue
            for cand in (d / "vmlinuz", root / "boot" / f"vmlinuz-{d.name}"):
                if cand.is_file():
                    return cand, d
    raise UserError(f"no vmlinuz + modules found in {root}: not a Debian kernel package layout")


def module_path(modules: Path, name: str) -> Path | None:
    """Path of module `name` (.ko, .ko.xz, .ko.zst) in a modules tree, if it is a module."""
    for ext in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
        hits = list(modules.glob(f"kernel/**/{name}{ext}"))
        if hits:
            return hits[0]
    return None


def run_depmod(modules: Path) -> None:
    """Packages like sid's ship no modules.dep: generate it (for a -b root layout)."""
    if (modules / "modules.dep").exists():
        return
    base = modules.parent.parent  # .../lib/modules/<rel> -> root with lib/modules
    if modules.parent.name != "modules":
        raise UserError(f"{modules}: expected a .../modules/<release> directory")
    # depmod wants <base>/lib/modules/<rel>: give it a symlinked root if the layout differs.
    if modules.parent.parent.name != "lib":
        shim = modules.parent.parent / ".depmod-root"
        (shim / "lib").mkdir(parents=True, exist_ok=True)
        link = shim / "lib" / "modules"
        if not link.exists():
            link.symlink_to(modules.parent)
        base = shim
    else:
        base = modules.parent.parent.parent
    p = subprocess.run(["depmod", "-b", str(base), modules.name], capture_output=True, text=True)
    if p.returncode != 0:
        raise UserError(f"depmod for {modules} failed: {p.stderr.strip()}")


class DebianKernels:
    def __init__(self, cache: Path | None = None, apt: PrivateApt | None = None):
        self.cache = cache or cache_dir()
        self._apt = apt

    @property
    def apt(self) -> PrivateApt:
        if self._apt is None:
            self._apt = PrivateApt(self.cache)
        return self._apt

    def _show(self, pkg_eq: str) -> str:
        return self.apt.query(["show", "--no-all-versions", pkg_eq])

    @staticmethod
    def depends_of(show: str) -> list[str]:
        for line in show.splitlines():
            if line.startswith(("Depends:", "Pre-Depends:")):
                return [d.strip().split()[0] for d in re.split(r"[,|]", line.split(":", 1)[1]) if d.strip()]
        return []

    def resolve(self, ks: KernelSpec) -> tuple[str, list[str]]:
        """(meta version, [packages to download]) for a Debian spec."""
        self.apt.update()
        versions = self.apt.policy_versions("linux-image-amd64")
        if ks.suite:
            if ks.suite == "bookworm":
                raise UserError("debian:bookworm is Linux 6.1 built with '# CONFIG_BLK_DEV_UBLK is not "
                                "set': it has no ublk. Use debian:bookworm-backports (6.12); a tree build of "
                                "linux-source-6.1 (planned --kernel-tree) is the route to 6.1")
            if ks.suite not in versions:
                raise UserError(f"no linux-image-amd64 in {ks.suite} on {self.apt.mirror} "
                                f"(suites offering it: {', '.join(sorted(versions)) or 'none'})")
            version = versions[ks.suite]
        else:
            version = ks.version
        show = self._show(f"linux-image-amd64={version}")
        image = next((d for d in self.depends_of(show) if d.startswith("linux-image-")), None)
        if not image:
            raise UserError(f"linux-image-amd64={version}: no linux-image-* dependency found")
        if image.endswith("-amd64") and re.match(r"linux-image-6\.1\.", image):
            raise UserError(f"{image} is Debian's 6.1, which has no ublk (CONFIG_BLK_DEV_UBLK is "
                            "not set): use debian:bookworm-backports; 6.1 needs a tree build (planned --kernel-tree)")
        pkgs = [image]
        # sid splits the image into linux-binary-* (vmlinuz) and linux-modules-*.
        for dep in self.depends_of(self._show(image)):
            if re.match(r"linux-(binary|modules)-", dep):
                pkgs.append(dep)
        return version, pkgs

    def fetch(self, spec: str) -> Kernel:
        ks = parse_spec(spec)
        version, pkgs = self.resolve(ks)
        dest = self.cache / "kernels" / f"{pkgs[0]}_{version}"
        root = dest / "root"
        if not (dest / "done").exists():
            print(f"ublkcheck: fetching {' '.join(pkgs)} {version} for {spec} (apt-get download, "
                  f"cached in {dest})", file=sys.stderr, flush=True)
            shutil.rmtree(dest, ignore_errors=True)
            debs = self.apt.download(pkgs, dest / "debs")
            for deb in debs:
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            (dest / "done").write_text(" ".join(pkgs) + "\n")
        vmlinuz, modules = find_layout(root)
        run_depmod(modules)
        k = Kernel(spec=spec, release=modules.name, vmlinuz=vmlinuz, modules=modules,
                   package_version=version)
        if module_path(modules, "ublk_drv") is None:
            raise UserError(f"{spec} ({modules.name}) has no ublk_drv module")
        return k

    def cached(self) -> list[str]:
        d = self.cache / "kernels"
        return sorted(p.name for p in d.iterdir() if (p / "done").exists()) if d.is_dir() else []

    def available(self) -> dict[str, str]:
        self.apt.update()
        return self.apt.policy_versions("linux-image-amd64")


def check_kernel_files(bzimage: str, modules: str | None) -> None:
    """A bare kernel: a bzImage (the x86 boot protocol's "HdrS" at 0x202) or an ELF vmlinux,
    and --modules, its lib/modules/<release> directory holding ublk_drv."""
    kimg = Path(bzimage)
    if not kimg.is_file():
        raise UserError(f"--kernel {bzimage}: no such file (give a bzImage/vmlinuz path or debian:<suite>)")
    with open(kimg, "rb") as f:
        head = f.read(0x206)
    if head[:4] != b"\x7fELF" and head[0x202:0x206] != b"HdrS":
        raise UserError(f"--kernel {bzimage}: not a bzImage (no boot-protocol header 'HdrS' at 0x202) "
                        "nor an ELF vmlinux")
    if not modules:
        raise UserError(f"--kernel {bzimage} needs --modules DIR (the lib/modules/<release> of that kernel)")
    mdir = Path(modules)
    if not mdir.is_dir():
        raise UserError(f"--modules {modules}: not a directory (expected lib/modules/<release>)")
    if mdir.parent.name != "modules":
        raise UserError(f"--modules {modules}: expected a .../modules/<release> directory")
    builtin = mdir / "modules.builtin"
    if not any(mdir.rglob("ublk_drv.ko*")) and not (builtin.is_file() and "ublk_drv.ko" in builtin.read_text()):
        raise UserError(f"--modules {modules}: no ublk_drv.ko in it, nor in modules.builtin "
                        "(build the kernel with CONFIG_BLK_DEV_UBLK=m)")


def from_paths(bzimage: str, modules: str | None) -> Kernel:
    check_kernel_files(bzimage, modules)
    kimg, mdir = Path(bzimage), Path(modules)
    run_depmod(mdir)
    return Kernel(spec=bzimage, release=mdir.name, vmlinuz=kimg, modules=mdir)
