"""One guest's state as the host follows it (orchestrate.Boot): which test a kernel report
starts the grace clock of, and what the agent's events say is running."""
from ublkcheck.guest import protocol
from ublkcheck.orchestrate import KVM_INTERNAL_ERROR, Boot

OOPS = "[   5.1] BUG: kernel NULL pointer dereference, address: 0000000000000000"
WARN = "[   5.1] WARNING: CPU: 1 PID: 2 at drivers/block/ublk_drv.c:10 f+0x1/0x2"


def test_a_fatal_report_starts_the_grace_clock_of_the_test_it_belongs_to():
    b = Boot()
    b.on_console(OOPS, 1.0)  # before any test: nobody's clock
    b.on_console("[   4.0] " + protocol.start_marker("io.T.One"), 2.0)
    b.on_console(WARN, 3.0)  # a WARN does not stop the test
    assert b.first_report == {}
    b.on_console(OOPS, 4.0)
    b.on_console(OOPS, 5.0)  # the first one counts
    b.on_console("[   6.0] " + protocol.end_marker("io.T.One", "fail"), 6.0)
    b.on_console(OOPS, 7.0)  # between tests
    assert b.first_report == {"io.T.One": 4.0}
    assert len(b.lines) == 7 and not b.kvm_error
    b.on_console(f"{KVM_INTERNAL_ERROR}, suberror: 1", 8.0)
    assert b.kvm_error


def test_events_say_whether_the_agent_is_up_what_runs_and_when_it_finished():
    b = Boot()
    b.on_event(protocol.boot_event("7.2.13", 0x7fff, ""), 1.0)
    assert b.agent_up and b.running_test is None
    b.on_event(protocol.start_event("io.T.One"), 2.0)
    assert b.running_test == "io.T.One"
    b.on_event(protocol.result_event("io.T.Other", "pass", 1.0), 3.0)  # not the running one
    assert b.running_test == "io.T.One"
    b.on_event(protocol.result_event("io.T.One", "pass", 1.0), 4.0)
    assert b.running_test is None and b.done_at is None
    b.on_event(protocol.done_event(), 5.0)
    assert b.done_at == 5.0 and b.last_event == 5.0
