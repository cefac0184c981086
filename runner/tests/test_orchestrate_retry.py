"""The command form boots once more when the first guest died before its agent started,
and only once; a guest whose agent ran is never booted again."""
from pathlib import Path

from ublkcheck import orchestrate, vm
from ublkcheck.guest.protocol import Plan
from ublkcheck.kernel import Kernel


def make(tmp_path, outcomes):
    k = Kernel(spec="debian:sid", release="7.2.13+deb14-amd64", vmlinuz=Path("/nonexistent"),
               modules=Path("/nonexistent"))
    o = orchestrate.Orchestrator(k, vm.VmConfig(accel="tcg"), tmp_path, orchestrate.Limits(), quiet=True)
    seq = iter(outcomes)

    def fake_boot(plan, progress):
        o.boots += 1
        if next(seq):
            o.boot_seconds = 5.0
            o.results["command"] = {"event": "result", "name": "command", "status": "pass"}
        else:
            o.boot_errors.append(f"boot {o.boots}: kernel panic (qemu exit 0)")
        return "done"
    o._boot = fake_boot
    return o


def test_a_guest_lost_before_its_agent_is_booted_once_more(tmp_path):
    o = make(tmp_path, [False, True])
    run = o.run(Plan(command="true"), [], "debian:sid", [])
    assert o.boots == 2 and run.ok()


def test_two_lost_guests_end_the_run_as_an_error(tmp_path):
    o = make(tmp_path, [False, False, True])
    run = o.run(Plan(command="true"), [], "debian:sid", [])
    assert o.boots == 2 and not run.ok()
    assert "boot 2: kernel panic" in run.tests[0].message


def test_a_command_that_ran_is_not_repeated(tmp_path):
    o = make(tmp_path, [True, True])
    o.run(Plan(command="true"), [], "debian:sid", [])
    assert o.boots == 1


def test_the_features_word_comes_in_its_own_event(tmp_path):
    """The agent starts GET_FEATURES beside the first test; its word arrives after the boot
    event, and the run keeps it."""
    from ublkcheck.guest import protocol
    from ublkcheck.orchestrate import Boot
    o = make(tmp_path, [])
    for ev in (protocol.boot_event("7.2.13", None, "", 1.0, 1.5), protocol.start_event("a.T.One"),
               protocol.features_event(0x1fffff)):
        protocol.append_event(o.events_path, ev)
    boot = Boot()
    o._take_events(boot, 0, 0.0, None)
    assert boot.agent_up and o.features == 0x1fffff and o.kernel_release == "7.2.13"
