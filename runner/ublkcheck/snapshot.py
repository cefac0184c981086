"""`--boot snapshot`: the guest's boot, done once and kept as a QEMU migration image.

init.sh, booted with SNAPSHOT=1, stops after the kernel's boot and its modules (before
anything mounts 9p: QEMU refuses to migrate a mounted export) and waits on the console for
"go <epoch> <seed>". The first time, a guest is booted to that point and migrated into a
file in the cache; every later guest of the same command line starts from that file
(`-incoming`), gets its "go" once it runs, sets the clock, stirs the seed into the random
pool and goes on: 9p, overlay, the agent. The kernel's boot (about 3 s under TCG) is then
paid once per kernel, initramfs and command line instead of once per guest.

A making boot that fails leaves no image, and the guest boots the plain way."""
from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

from . import vm
from .kernel import cache_dir

SNAPSHOT_POINT = "ublkcheck-init: snapshot point"   # init.sh, waiting for "go"
RESTORED = "ublkcheck-init: restored"                # init.sh, after "go"
KEEP = 4                 # images kept in the cache (about 160 MB each for -m 3072)
MAKE_TIMEOUT = 120.0     # qemu start -> snapshot point
MIGRATE_TIMEOUT = 120.0  # migration into the file
RUN_TIMEOUT = 30.0       # a restored guest running


def snapshot_dir() -> Path:
    d = cache_dir() / "snapshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


def key(argv: list[str], share: Path, monitor: Path) -> str:
    """What the image depends on: the command line without this run's share and monitor
    paths (the guest has not mounted the share when it is saved), the files it boots
    (kernel, initramfs, firmware: path, size, mtime) and QEMU's version."""
    h = hashlib.sha256()
    for a in argv:
        h.update(a.replace(str(share), "<share>").replace(str(monitor), "<monitor>").encode() + b"\0")
    for flag in ("-kernel", "-initrd"):
        if flag in argv:
            st = os.stat(argv[argv.index(flag) + 1])
            h.update(f"{flag} {st.st_size} {st.st_mtime_ns}".encode())
    h.update(subprocess.run([argv[0], "--version"], capture_output=True, text=True).stdout.encode())
    return h.hexdigest()[:16]


def restore_args(image: Path) -> list[str]:
    return ["-incoming", f"exec:cat {shlex.quote(str(image))}"]


def go_line() -> bytes:
    """What a restored guest waits for. The leading newline ends whatever partial line the
    console had; the seed is mixed into the guest's pool (every restore starts from one
    saved pool)."""
    return f"\ngo {int(time.time())} {secrets.randbits(64)}\n".encode()


def wait_running(monitor: Path, timeout: float = RUN_TIMEOUT) -> bool:
    """True once the restored guest runs (its migration loaded): only then can it take
    console input, which a guest still loading would lose."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "VM status: running" in vm.hmp(monitor, "info status"):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def image_for(argv: list[str], share: Path, monitor: Path, log) -> Path | None:
    """The image for this command line: from the cache, or made now (one maker at a time
    per image); None if it cannot be made. `log` takes one line for the run's console."""
    k = key(argv, share, monitor)
    image = snapshot_dir() / f"{k}.img"
    with open(snapshot_dir() / f"{k}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image.exists():
            os.utime(image)
            return image
        t0 = time.monotonic()
        why = make(argv, share, monitor, image)
        if why:
            log(f"ublkcheck: no boot snapshot ({why}); this guest boots the plain way")
            return None
        log(f"ublkcheck: boot snapshot {image.name} made in {time.monotonic() - t0:.1f} s")
        prune()
        return image


def make(argv: list[str], share: Path, monitor: Path, image: Path) -> str:
    """Boots the guest to init.sh's snapshot point and migrates it into `image`. Returns
    "" or why it failed. The making guest gets a scratch share and monitor of its own; its
    console (stamped, as every guest's) goes to <image>.console.log."""
    work = Path(str(image) + ".work")
    shutil.rmtree(work, ignore_errors=True)
    (work / "share").mkdir(parents=True)
    mon = work / "mon.sock"
    a = [x.replace(str(share), str(work / "share")).replace(str(monitor), str(mon)) for x in argv]
    tmp = Path(str(image) + ".part")
    console = Path(str(image) + ".console.log")
    console.unlink(missing_ok=True)
    point = threading.Event()
    guest = vm.Guest(a, console, mon, lambda _i, text: SNAPSHOT_POINT in text and point.set())
    guest.start()
    try:
        deadline = time.monotonic() + MAKE_TIMEOUT
        while not point.wait(0.2):
            if not guest.running() or time.monotonic() > deadline:
                return (f"the guest ended or did not reach init.sh's snapshot point in {MAKE_TIMEOUT:.0f} s; "
                        f"its console: {console}")
        # -d: the monitor answers at once; the loop below follows the migration.
        vm.hmp(mon, f'migrate -d "exec:cat > {shlex.quote(str(tmp))}"')
        deadline = time.monotonic() + MIGRATE_TIMEOUT
        while True:
            state = vm.hmp(mon, "info migrate")
            if "Migration status: completed" in state:
                break
            if "Migration status: failed" in state or time.monotonic() > deadline:
                status = [l for l in state.splitlines() if "Migration status" in l] or ["no status"]
                return f"migration into the image did not complete: {status[-1].strip()[:200]}"
            time.sleep(0.1)
        tmp.rename(image)
        return ""
    except OSError as e:
        return f"monitor: {e}"
    finally:
        guest.stop()
        tmp.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def prune(keep: int = KEEP) -> None:
    """Only the `keep` images used last stay."""
    images = sorted(snapshot_dir().glob("*.img"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in images[keep:]:
        old.unlink(missing_ok=True)
        Path(str(old) + ".console.log").unlink(missing_ok=True)
        old.with_suffix(".lock").unlink(missing_ok=True)
