"""Why the host stops a guest, given what it knows at one instant (orchestrate.stop_reason)."""
from dataclasses import replace

from ublkcheck.orchestrate import GuestState, stop_reason

# A guest 30 s after qemu start, its agent up, a test running and printing.
LIVE = GuestState(now=130.0, started=100.0, last_activity=129.0, agent_up=True, running=True,
                  done_at=None, report_at=None, kvm_error=False, idle_limit=120.0,
                  boot_timeout=90.0, grace=20.0, run_started=100.0, run_timeout=3600.0)


def test_a_working_guest_goes_on():
    assert stop_reason(LIVE) is None


def test_exited():
    assert stop_reason(replace(LIVE, running=False)) == "exited"


def test_done_then_slow_to_power_off():
    assert stop_reason(replace(LIVE, done_at=125.0)) is None
    assert stop_reason(replace(LIVE, done_at=119.0)) == "done"


def test_kvm_internal_error_stops_the_boot_at_once():
    booting = replace(LIVE, now=103.0, agent_up=False, last_activity=102.0)
    assert stop_reason(booting) is None
    assert "KVM internal error" in stop_reason(replace(booting, kvm_error=True))
    # Once the agent runs, the line is a guest's business (a test may print it): no stop.
    assert stop_reason(replace(LIVE, kvm_error=True)) is None


def test_no_agent_within_the_boot_timeout():
    assert stop_reason(replace(LIVE, agent_up=False, now=191.0)) == "boot: no agent after 90s"


def test_a_report_ends_the_test_after_the_grace():
    assert stop_reason(replace(LIVE, report_at=115.0)) is None
    assert stop_reason(replace(LIVE, report_at=109.0)).startswith("a kernel report")


def test_silence_is_a_hang_only_past_the_tests_own_limit():
    quiet = replace(LIVE, now=300.0, last_activity=170.0)
    assert stop_reason(quiet).startswith("hang: no console output and no progress for 120s")
    assert stop_reason(replace(quiet, idle_limit=400.0)) is None


def test_whole_run_timeout():
    assert stop_reason(replace(LIVE, run_timeout=20.0)) == "run timeout (20s)"
