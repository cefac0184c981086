"""--kernel-tree's input checks and config fragments (the build itself runs in the nightly
job and was measured by hand: see the README)."""
import pytest

from ublkcheck import tree
from ublkcheck.errors import UserError


def make_tree(tmp_path, configured=False):
    (tmp_path / "drivers" / "block").mkdir(parents=True)
    (tmp_path / "Makefile").write_text("# kernel\n")
    (tmp_path / "drivers" / "block" / "ublk_drv.c").write_text("/* ublk */\n")
    if configured:
        (tmp_path / ".config").write_text("CONFIG_X=y\n")
    return tmp_path


def test_debug_names_are_checked_and_normalised():
    assert tree.parse_debug("lockdep,kasan,kasan") == ["kasan", "lockdep"]
    assert tree.parse_debug("") == []
    with pytest.raises(UserError, match="unknown 'kcsan'.*kasan, lockdep, hung-task"):
        tree.parse_debug("kasan,kcsan")


def test_every_fragment_exists_and_sets_what_the_guest_needs():
    frags = tree.fragments(["hung-task", "kasan", "lockdep"])
    assert all(f.is_file() for f in frags)
    guest = frags[0].read_text()
    for need in ("CONFIG_BLK_DEV_UBLK=m", "CONFIG_9P_FS=y", "CONFIG_NET_9P_VIRTIO=y",
                 "CONFIG_OVERLAY_FS=y", "CONFIG_IO_URING=y", "CONFIG_BLK_DEV_NULL_BLK=m"):
        assert need in guest
    assert "CONFIG_KASAN=y" in frags[2].read_text()
    assert "CONFIG_PROVE_LOCKING=y" in frags[3].read_text()


def test_not_a_tree_and_a_configured_tree_are_refused(tmp_path):
    with pytest.raises(UserError, match="not a kernel source tree"):
        tree.check_tree(tmp_path)
    t = make_tree(tmp_path / "t", configured=True)
    with pytest.raises(UserError, match="make mrproper"):
        tree.TreeBuilder(t, [])
    (t / "drivers" / "block" / "ublk_drv.c").unlink()
    (t / ".config").unlink()
    with pytest.raises(UserError, match="no drivers/block/ublk_drv.c"):
        tree.check_tree(t)


def test_build_dir_depends_on_tree_and_fragments(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    t = make_tree(tmp_path / "t")
    a, b, c = tree.TreeBuilder(t, []), tree.TreeBuilder(t, []), tree.TreeBuilder(t, ["kasan"])
    assert a.out == b.out and a.out != c.out
    assert str(a.out).startswith(str(tmp_path / "cache"))
    assert a.module_build_args() == ["-C", str(t.resolve()), f"O={a.out}"]


def test_fetch_source_wants_a_series(tmp_path):
    with pytest.raises(UserError, match="like 7.2 or 6.1"):
        tree.fetch_debian_source("latest", tmp_path)
