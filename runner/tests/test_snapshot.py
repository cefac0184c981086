"""--boot snapshot: the image's key, the cache, and init.sh's side of the handshake. The
restore itself is exercised by every VM test (snapshot is the default boot)."""
import os
import re
from pathlib import Path

import pytest

from ublkcheck import snapshot, vm
from ublkcheck.kernel import Kernel

INIT_SH = (Path(snapshot.__file__).parent / "guest" / "init.sh").read_text()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def argv_for(tmp_path, share, monitor, extra=()):
    qemu = tmp_path / "qemu"
    qemu.write_text("#!/bin/sh\necho 'QEMU emulator version 7.2.0'\n")
    qemu.chmod(0o755)
    for f in ("kernel", "initrd"):
        if not (tmp_path / f).exists():
            (tmp_path / f).touch()
    return [str(qemu), "-kernel", str(tmp_path / "kernel"), "-initrd", str(tmp_path / "initrd"),
            "-fsdev", f"local,id=results,path={share},security_model=none",
            "-monitor", f"unix:{monitor},server,nowait", *extra]


def test_the_key_ignores_the_runs_own_paths_and_follows_what_the_guest_booted(cache):
    k1 = snapshot.key(argv_for(cache, cache / "run1/share", cache / "run1/mon.sock"), cache / "run1/share",
                      cache / "run1/mon.sock")
    k2 = snapshot.key(argv_for(cache, cache / "run2/share", cache / "run2/mon.sock"), cache / "run2/share",
                      cache / "run2/mon.sock")
    assert k1 == k2
    other = argv_for(cache, cache / "s", cache / "m", extra=["-append", "foo=1"])
    assert snapshot.key(other, cache / "s", cache / "m") != k1
    os.utime(cache / "initrd", ns=(1, 1))     # a new initramfs (agent, init.sh) is a new image
    assert snapshot.key(argv_for(cache, cache / "s", cache / "m"), cache / "s", cache / "m") != k1


def test_an_image_is_made_once_and_a_failed_make_boots_the_plain_way(cache, monkeypatch):
    argv = argv_for(cache, cache / "s", cache / "m")
    made, notes = [], []

    def make(argv, share, monitor, image):
        made.append(image)
        image.write_bytes(b"state")
        return ""
    monkeypatch.setattr(snapshot, "make", make)
    first = snapshot.image_for(argv, cache / "s", cache / "m", notes.append)
    again = snapshot.image_for(argv, cache / "s", cache / "m", notes.append)
    assert first == again and first.read_bytes() == b"state" and len(made) == 1
    assert len(notes) == 1 and "made in" in notes[0]

    first.unlink()
    monkeypatch.setattr(
        snapshot, "make", lambda *a: "the guest did not reach init.sh's snapshot point in 120 s; its console: x")
    assert snapshot.image_for(argv, cache / "s", cache / "m", notes.append) is None
    assert "no boot snapshot (the guest did not reach" in notes[-1] and "plain way" in notes[-1]


def test_only_the_newest_images_stay(cache):
    d = snapshot.snapshot_dir()
    for i in range(6):
        (d / f"{i}.img").write_bytes(b"x")
        (d / f"{i}.lock").touch()
        os.utime(d / f"{i}.img", (i, i))
    snapshot.prune(keep=4)
    assert sorted(p.name for p in d.glob("*.img")) == ["2.img", "3.img", "4.img", "5.img"]
    assert sorted(p.name for p in d.glob("*.lock")) == ["2.lock", "3.lock", "4.lock", "5.lock"]


def test_init_sh_waits_for_go_at_the_snapshot_point_and_renews_clock_and_pool():
    assert f'echo "{snapshot.SNAPSHOT_POINT}"' in INIT_SH
    assert f'echo "{snapshot.RESTORED} up' in INIT_SH
    # Before anything mounts 9p (QEMU does not migrate a mounted export).
    assert INIT_SH.index(snapshot.SNAPSHOT_POINT) < INIT_SH.index("mount -t 9p")
    assert 'date -s "@$epoch"' in INIT_SH and "> /dev/urandom" in INIT_SH
    line = snapshot.go_line().decode()
    assert re.fullmatch(r"\ngo \d{10} \d+\n", line), line


def test_only_the_snapshot_boot_asks_init_sh_to_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(vm, "qemu_binary", lambda: "qemu")
    k = Kernel(spec="debian:sid", release="r", vmlinuz=tmp_path / "vmlinuz", modules=tmp_path / "r")
    for boot in ("snapshot", "fast", "pvh", "bzimage"):
        argv = vm.command_line(k, tmp_path / "initrd", tmp_path, vm.VmConfig(boot=boot), tmp_path / "mon",
                               Path("/a.py"))
        assert ("SNAPSHOT=1" in argv[argv.index("-append") + 1].split()) == (boot == "snapshot"), boot
        assert ("-bios" in argv) == (boot in ("snapshot", "fast")), boot
