"""The upstream ublk selftests (`tools/testing/selftests/ublk` of the kernel under test) as
tests of a run: `run --suite kselftests`. The scripts come from the kernel's own source
(the tree of `--kernel-tree`, or Debian's linux-source of a `debian:` kernel), kublk and
metadata_size are built by scripts/build-kublk.sh against a liburing new enough for all of
kublk (trixie's liburing-dev, fetched privately: bookworm's 2.3 lacks the buffer-ring API
of batch mode), and each `test_*.sh` becomes one planned test of kind "script", which the
agent runs with the markers, scan and hang handling of every other test (its exit code is
read as kselftest's: 0 pass, 4 skip, anything else fail; guest/agent.py script_result)."""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from .discover import PlannedTest
from .errors import UserError
from .kernel import DebianKernels, Kernel, cache_dir
from .paths import REPO

SUITE = "kselftests"
SELFTESTS = "tools/testing/selftests/ublk"
LIBURING = "liburing-dev/trixie"
DEFAULT_TIMEOUT = 150  # the directory's `settings` file says so in 7.2


def script_timeout(selftests: Path) -> int:
    s = selftests / "settings"
    m = re.search(r"^timeout=(\d+)", s.read_text(), re.M) if s.is_file() else None
    return int(m.group(1)) if m else DEFAULT_TIMEOUT


def liburing_root() -> Path:
    """trixie's liburing-dev, unpacked once into the cache (never installed)."""
    root = cache_dir() / "liburing" / "trixie"
    if (root / "usr/lib/x86_64-linux-gnu/liburing.a").is_file():
        return root
    apt = DebianKernels().apt
    apt.update()
    work = cache_dir() / "liburing" / "debs"
    shutil.rmtree(work, ignore_errors=True)
    debs = apt.download([LIBURING], work)
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(root)], check=True)
    shutil.rmtree(work, ignore_errors=True)
    return root


def debian_source(kernel: Kernel) -> Path:
    """The selftests and UAPI headers of a Debian kernel's own linux-source package."""
    m = re.match(r"(\d+\.\d+)", kernel.release)
    series = m.group(1) if m else ""
    dest = cache_dir() / "kselftests" / "src" / kernel.release
    tree = dest / f"linux-source-{series}"
    if (dest / "done").exists():
        return tree
    shutil.rmtree(dest, ignore_errors=True)
    apt = DebianKernels().apt
    apt.update()
    debs = apt.download([f"linux-source-{series}={kernel.package_version}"], dest / "debs")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(dest / "pkg")], check=True)
    tarball = next((dest / "pkg/usr/src").glob(f"linux-source-{series}.tar.*"))
    top = f"linux-source-{series}"
    subprocess.run(["tar", "-C", str(dest), "-xf", str(tarball), f"{top}/{SELFTESTS}",
                    f"{top}/include/uapi"], check=True)
    shutil.rmtree(dest / "pkg")
    shutil.rmtree(dest / "debs")
    (dest / "done").touch()
    return tree


def source_tree(source, kernel: Kernel) -> Path:
    """Where the selftests of this kernel are: the tree being tested, or Debian's
    linux-source of the same package version."""
    from .tree import TreeBuilder
    if isinstance(source, TreeBuilder):
        return source.src
    if isinstance(source, DebianKernels) and kernel.package_version:
        return debian_source(kernel)
    raise UserError("--suite kselftests runs the selftests of the kernel's own source: use "
                    "--kernel debian:... or --kernel-tree DIR (a bare bzImage has none)")


def stage(tree: Path) -> Path:
    """A directory with the tree's selftest scripts, kublk and metadata_size, cached by the
    hash of the selftest sources and UAPI header."""
    src = tree / SELFTESTS
    if not (src / "test_common.sh").is_file():
        raise UserError(f"{tree}: has no {SELFTESTS}/test_common.sh (the ublk selftests came in 6.14)")
    h = hashlib.sha256()
    for f in sorted(src.rglob("*")) + [tree / "include/uapi/linux/ublk_cmd.h"]:
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    h.update((REPO / "scripts/build-kublk.sh").read_bytes())
    out = cache_dir() / "kselftests" / "staged" / h.hexdigest()[:16]
    if (out / "kublk").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("*.c", "*.h", "Makefile"))
    p = subprocess.run(["bash", str(REPO / "scripts/build-kublk.sh"), str(tree), str(out / "kublk")],
                       env={"LIBURING": str(liburing_root()), "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True)
    if p.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
        raise UserError(f"building kublk from {src} failed:\n{tail}")
    return out


def planned(staged: Path) -> list[PlannedTest]:
    timeout = script_timeout(staged) + 30
    return [PlannedTest(name=f"{SUITE}.{s.stem}", suite=SUITE, binary=str(s), filter="",
                        timeout=timeout, kind="script")
            for s in sorted(staged.glob("test_*.sh")) if s.name != "test_common.sh"]
