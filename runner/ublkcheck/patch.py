"""Patched ublk_drv for a Debian kernel: apply patches to the driver source of the same
version (linux-source-X), build only the module against a prepared tree, cache by hash.

Recipe: unpack linux-source, copy the kernel's config (shipped in
linux-headers-<rel>) to .config, make olddefconfig + modules_prepare with KERNELRELEASE set,
copy Module.symvers from linux-headers, then make M=<dir with the patched ublk_drv.c>.
pahole (dwarves) must be installed or struct module lacks the BTF fields and insmod fails.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import UserError
from .kernel import DebianKernels, Kernel, cache_dir

DRIVER = "drivers/block/ublk_drv.c"


def _run(cmd: list[str], cwd: Path | None = None, what: str = "") -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
        raise UserError(f"{what or ' '.join(cmd)} failed:\n{tail}")
    return p.stdout


def check_patch(patch: Path, src_file: Path) -> None:
    """Dry-run `patch` on a copy of the driver; on failure name the file and the hunk."""
    if not patch.is_file():
        raise UserError(f"--patch {patch}: no such file")
    text = patch.read_text(errors="replace")
    if DRIVER not in text:
        raise UserError(f"--patch {patch}: it does not touch {DRIVER} (only the ublk driver is rebuilt)")
    work = cache_dir() / "patchcheck"
    shutil.rmtree(work, ignore_errors=True)
    (work / "drivers/block").mkdir(parents=True)
    shutil.copy2(src_file, work / DRIVER)
    p = subprocess.run(["patch", "-p1", "--dry-run", "-f", "-i", str(patch.resolve())], cwd=work,
                       capture_output=True, text=True)
    if p.returncode != 0:
        bad = [l for l in p.stdout.splitlines() if "FAILED" in l or "malformed" in l.lower() or "can't find" in l]
        raise UserError(f"--patch {patch} does not apply to {DRIVER} of this kernel: "
                        f"{'; '.join(bad) or p.stdout.strip().splitlines()[-1:]}")


class ModuleBuilder:
    def __init__(self, dk: DebianKernels, kernel: Kernel):
        if not kernel.package_version:
            raise UserError("--patch needs a Debian kernel (--kernel debian:...), whose matching "
                            "linux-source package the driver is rebuilt from")
        self.dk, self.kernel = dk, kernel
        self.base = cache_dir() / "modbuild" / kernel.release

    def _source_series(self) -> str:
        m = re.match(r"(\d+\.\d+)", self.kernel.release)
        return m.group(1)

    def prepare(self) -> Path:
        """A kernel tree ready for M= builds (cached)."""
        tree = self.base / "tree"
        if (self.base / "prepared").exists():
            return tree
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        series = self._source_series()
        pver = self.kernel.package_version
        debs = self.dk.apt.download([f"linux-source-{series}={pver}",
                                     f"linux-headers-{self.kernel.release}={pver}"], self.base / "debs")
        for d in debs:
            _run(["dpkg-deb", "-x", str(d), str(self.base / "pkg")], what=f"unpack {d.name}")
        tarball = next((self.base / "pkg/usr/src").glob(f"linux-source-{series}.tar.*"))
        _run(["tar", "-C", str(self.base), "-xf", str(tarball),
              "--exclude", f"linux-source-{series}/tools/testing"], what="unpack linux-source")
        (self.base / f"linux-source-{series}").rename(tree)
        hdr = self.base / "pkg/usr/src" / f"linux-headers-{self.kernel.release}"
        shutil.copy2(hdr / ".config", tree / ".config")
        rel = f"KERNELRELEASE={self.kernel.release}"
        _run(["make", "olddefconfig", rel], cwd=tree, what="make olddefconfig")
        if "CONFIG_DEBUG_INFO_BTF_MODULES=y" in (hdr / ".config").read_text() and \
                "CONFIG_DEBUG_INFO_BTF_MODULES=y" not in (tree / ".config").read_text():
            raise UserError("the kernel has BTF for modules but this host lacks pahole: install "
                            "dwarves (scripts/bootstrap.sh does), or the module will not load")
        _run(["make", f"-j{os.cpu_count() or 2}", "modules_prepare", rel], cwd=tree, what="make modules_prepare")
        shutil.copy2(hdr / "Module.symvers", tree / "Module.symvers")
        (self.base / "prepared").touch()
        return tree

    def build(self, patches: list[Path]) -> Path:
        tree = self.prepare()
        return build_external(tree / DRIVER, patches, self.base / "modules",
                              ["-C", str(tree), f"KERNELRELEASE={self.kernel.release}"])


def build_external(src: Path, patches: list[Path], cache: Path, make_args: list[str],
                   gcov: bool = False) -> Path:
    """ublk_drv.ko from `src` with `patches` applied, built as an external module with
    `make <make_args> M=...`; cached under `cache` by the hash of the source and patches.
    With `gcov` the module alone is instrumented (GCOV_PROFILE): its ublk_drv.gcno stays
    beside the .ko for the coverage stage."""
    for p in patches:
        check_patch(p, src)
    h = hashlib.sha256(src.read_bytes())
    for p in patches:
        h.update(p.read_bytes())
    out = cache / (h.hexdigest()[:16] + ("-gcov" if gcov else ""))
    ko = out / "ublk_drv.ko"
    if ko.exists():
        return ko
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copy2(src, out / "ublk_drv.c")
    (out / "Kbuild").write_text("obj-m := ublk_drv.o\n" + ("GCOV_PROFILE := y\n" if gcov else ""))
    for p in patches:
        _run(["patch", "-p3", "-f", "-i", str(p.resolve())], cwd=out, what=f"apply {p}")
    _run(["make", *make_args, f"M={out}", "modules"], what="build ublk_drv.ko")
    return ko
