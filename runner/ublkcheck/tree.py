"""`--kernel-tree DIR`: build a kernel source tree (a git checkout or an unpacked
linux-source) for the guest. `make defconfig`, then ci/kconfig/guest.config and the chosen
debug fragments merged with scripts/kconfig/merge_config.sh, `make olddefconfig`; the build
goes to an out-of-tree directory in the cache keyed by tree and fragments, so the next run
is incremental and the user's tree stays untouched."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .errors import UserError
from .kernel import Kernel, cache_dir, run_depmod
from .paths import KCONFIG

DEBUG_FRAGMENTS = {"kasan": "debug-kasan.config", "lockdep": "debug-lockdep.config",
                   "hung-task": "debug-hung-task.config", "gcov": "debug-gcov.config"}


def parse_debug(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()] if value else []
    for n in names:
        if n not in DEBUG_FRAGMENTS:
            raise UserError(f"--debug {value}: unknown '{n}' (choose from {', '.join(DEBUG_FRAGMENTS)}, "
                            "comma-separated)")
    return sorted(set(names))


def fragments(debug: list[str]) -> list[Path]:
    return [KCONFIG / "guest.config"] + [KCONFIG / DEBUG_FRAGMENTS[d] for d in debug]


def check_tree(src: Path) -> None:
    if not (src / "Makefile").is_file() or not (src / "drivers" / "block").is_dir():
        raise UserError(f"--kernel-tree {src}: not a kernel source tree (no Makefile and drivers/block)")
    if not (src / "drivers" / "block" / "ublk_drv.c").is_file():
        raise UserError(f"--kernel-tree {src}: has no drivers/block/ublk_drv.c (ublk came in 6.0)")
    if (src / ".config").exists() or (src / "include" / "config").is_dir():
        raise UserError(f"--kernel-tree {src}: the tree has been configured or built in place; "
                        "ublkcheck builds out of tree (O=) and make refuses that: run "
                        "`make mrproper` in it, or give a clean copy")


def _make(src: Path, out: Path, targets: list[str], log, what: str) -> None:
    cmd = ["make", "-C", str(src), f"O={out}", f"-j{os.cpu_count() or 2}", *targets]
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        log.flush()
        tail = "\n".join(Path(log.name).read_text(errors="replace").splitlines()[-20:])
        raise UserError(f"{what} failed (full log: {log.name}):\n{tail}")


class TreeBuilder:
    def __init__(self, src: Path, debug: list[str]):
        self.src = src.resolve()
        check_tree(self.src)
        self.debug = debug
        h = hashlib.sha256(str(self.src).encode())
        for f in fragments(debug):
            h.update(f.read_bytes())
        tag = "-".join([self.src.name] + debug)
        self.out = cache_dir() / "trees" / f"{tag}-{h.hexdigest()[:12]}"

    def configure(self, log) -> None:
        cfg = self.out / ".config"
        stamp = self.out / ".ublkcheck-config-inputs"
        inputs = "\n".join(f"{f}:{hashlib.sha256(f.read_bytes()).hexdigest()}" for f in fragments(self.debug))
        if cfg.exists() and stamp.exists() and stamp.read_text() == inputs:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        _make(self.src, self.out, ["defconfig"], log, "make defconfig")
        merge = self.src / "scripts" / "kconfig" / "merge_config.sh"
        cmd = ["sh", str(merge), "-m", "-O", str(self.out), str(cfg), *map(str, fragments(self.debug))]
        p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.src)
        if p.returncode != 0:
            raise UserError(f"merge_config.sh failed (log: {log.name})")
        _make(self.src, self.out, ["olddefconfig"], log, "make olddefconfig")
        have = cfg.read_text()
        for need in ("CONFIG_BLK_DEV_UBLK=m", "CONFIG_9P_FS=y", "CONFIG_OVERLAY_FS=y", "CONFIG_IO_URING=y"):
            if need not in have:
                raise UserError(f"--kernel-tree {self.src}: {need} did not survive olddefconfig "
                                f"(a dependency is missing in this tree; see {cfg})")
        stamp.write_text(inputs)

    def build(self) -> Kernel:
        self.out.mkdir(parents=True, exist_ok=True)
        logpath = self.out / "ublkcheck-build.log"
        t0 = time.monotonic()
        with open(logpath, "w") as log:
            self.configure(log)
            print(f"ublkcheck: building {self.src} in {self.out} (-j{os.cpu_count() or 2}; log {logpath})",
                  file=sys.stderr)
            _make(self.src, self.out, ["bzImage", "modules"], log, "kernel build")
            release = subprocess.run(["make", "-s", "-C", str(self.src), f"O={self.out}", "kernelrelease"],
                                     capture_output=True, text=True).stdout.strip().splitlines()[-1]
            stage = self.out / "ublkcheck-modules"
            shutil.rmtree(stage, ignore_errors=True)
            _make(self.src, self.out, ["modules_install", f"INSTALL_MOD_PATH={stage}", "INSTALL_MOD_STRIP=1"],
                  log, "make modules_install")
        took = time.monotonic() - t0
        mdir = stage / "lib" / "modules" / release
        run_depmod(mdir)
        k = Kernel(spec=f"tree:{self.src}", release=release,
                   vmlinuz=self.out / "arch" / "x86" / "boot" / "bzImage", modules=mdir)
        k.notes.append(f"built from {self.src} with {', '.join(f.name for f in fragments(self.debug))} "
                       f"in {took:.0f}s")
        print(f"ublkcheck: {release} built in {took:.0f}s", file=sys.stderr)
        return k

    def module_build_args(self) -> list[str]:
        """make arguments for an external (M=) module against this build."""
        return ["-C", str(self.src), f"O={self.out}"]


def fetch_debian_source(series: str, dest: Path) -> Path:
    """Unpack Debian's linux-source-<series> (newest version in any suite) into
    dest/linux-source-<series>: a clean tree for --kernel-tree, e.g. 7.2 (sid) or 6.1
    (bookworm, whose kernel package has ublk disabled)."""
    import re
    from .kernel import DebianKernels
    if not re.fullmatch(r"\d+\.\d+", series):
        raise UserError(f"fetch-source {series}: expected a kernel series like 7.2 or 6.1")
    tree = dest / f"linux-source-{series}"
    if (tree / "Makefile").exists():
        return tree
    apt = DebianKernels().apt
    apt.update()
    versions = apt.policy_versions(f"linux-source-{series}")
    if not versions:
        raise UserError(f"no linux-source-{series} package in any configured Debian suite "
                        f"(try 7.2, 6.12 or 6.1)")
    work = cache_dir() / "sources" / series
    shutil.rmtree(work, ignore_errors=True)
    debs = apt.download([f"linux-source-{series}"], work / "debs")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(work / "pkg")], check=True)
    tarball = next((work / "pkg" / "usr" / "src").glob(f"linux-source-{series}.tar.*"))
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-C", str(dest), "-xf", str(tarball)], check=True)
    shutil.rmtree(work, ignore_errors=True)
    return tree
