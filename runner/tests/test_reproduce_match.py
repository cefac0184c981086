"""The seed-panic reproducer counts only the seed's bug, not any oops on the console."""
from ublkcheck.model import Report
from ublkcheck.reproduce import TEST, seed_report


def rep(title, excerpt, test=TEST):
    return Report(kind="x", title=title, signature=title, excerpt=excerpt, test=test)


SEED = rep("BUG: kernel NULL pointer dereference in io_uring_cmd_done",
           "BUG: kernel NULL pointer dereference\\nCall Trace:\\n ublk_cmd_list_tw_cb+0x2a [ublk_drv]")
BOOT_INT3 = rep("Oops in ktime_get_with_offset",
                "Oops: int3: 0000 [#1] SMP NOPTI\\nRIP: 0010:ktime_get_with_offset+0x51", test=None)


def test_the_seed_null_deref_in_ublk_is_the_reproduction():
    assert seed_report([SEED]) is SEED


def test_a_boot_time_oops_before_it_is_skipped_not_counted():
    assert seed_report([BOOT_INT3, SEED]) is SEED
    assert seed_report([BOOT_INT3]) is None


def test_a_null_deref_outside_ublk_or_outside_the_workload_is_not_the_seed():
    assert seed_report([rep("BUG: kernel NULL pointer dereference in foo", "Call Trace:\\n foo+0x1")]) is None
    assert seed_report([rep(SEED.title, SEED.excerpt, test=None)]) is None
