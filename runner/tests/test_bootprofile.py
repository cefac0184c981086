"""The boot profile (`run --boot-profile`) from a real console: debian:sid 7.2.13 under TCG,
the first boot of a full run, and its agent's boot event."""
from pathlib import Path

from ublkcheck import bootprofile
from ublkcheck.guest import protocol

CONSOLE = (Path(__file__).parent / "data" / "boot-console-sid.log").read_text()
BOOT_EVENT = {"event": "boot", "release": "7.2.13+deb14-amd64", "features": 1048575, "error": "", "uptime": 5.34}


def test_phases_of_a_real_boot():
    (lines,) = bootprofile.boots(CONSOLE)
    p = bootprofile.profile(lines, BOOT_EVENT)
    # The kernel's clock started 1.70 s after qemu (the line that lagged least: 2.431 - 0.730).
    assert p == {"firmware_and_setup": 1.70, "kernel_init": 3.11, "init_sh": 0.22, "agent": 2.01,
                 "first_test": 0.03, "total": 7.07}
    assert round(sum(v for k, v in p.items() if k != "total"), 2) == p["total"]


def test_the_agents_own_timings_split_its_phase():
    (lines,) = bootprofile.boots(CONSOLE)
    p = bootprofile.profile(lines, protocol.boot_event("r", 1, "", t_main=4.1, t_driver=4.9) | {"uptime": 5.34})
    assert (p["agent_python"], p["agent_driver"], p["agent_event"]) == (0.77, 0.8, 0.44)
    assert "agent" not in p and p["total"] == 7.07
    text = bootprofile.render(p)
    assert "the agent: python start" in text and "qemu start -> first test" in text and "7.07s" in text


def test_a_boot_whose_kernel_never_printed_has_no_profile():
    assert bootprofile.profile([(0.1, "SeaBIOS (version 1.16)")], None) is None


def test_each_boot_of_a_run_pairs_with_its_boot_event():
    second = CONSOLE.replace("boot 1:", "boot 2:")
    lost = "===== ublkcheck boot 2: qemu\n[    0.130] SeaBIOS\n[    2.431] [    0.730138] Kernel panic - not syncing\n"
    profiles = bootprofile.run_profiles(CONSOLE + lost + second.replace("boot 2:", "boot 3:"),
                                        [BOOT_EVENT, dict(BOOT_EVENT, uptime=6.0)])
    assert [p["total"] if p else None for p in profiles] == [7.07, 1.7, 7.07]
    assert profiles[2]["agent"] == 2.67 and "agent" not in profiles[1]


def test_a_guest_restored_from_its_snapshot_has_a_restore_phase_and_no_kernel_boot():
    """A real --boot snapshot guest (debian:sid 7.2.13, TCG): its clock began in the boot
    that made the image, so its boot is qemu start -> init.sh's "restored"."""
    console = (Path(__file__).parent / "data" / "boot-console-restored.log").read_text()
    (lines,) = bootprofile.boots(console)
    ev = {"event": "boot", "release": "7.2.13+deb14-amd64", "error": "", "t_main": 6.94, "t_driver": 7.3,
          "uptime": 7.32}
    p = bootprofile.profile(lines, ev)
    assert p == {"restore": 0.43, "init_sh": 0.26, "agent_python": 0.82, "agent_driver": 0.36, "agent_event": 0.02,
                 "first_test": 0.08, "total": 1.96}
    assert "QEMU loads the boot snapshot" in bootprofile.render(p)
    # A guest that booted with SNAPSHOT=1 (no image) and went on at once keeps its kernel phases.
    booted = CONSOLE.replace("ublkcheck-init: agent start", "ublkcheck-init: snapshot point\n[    9.999] "
                             "ublkcheck-init: restored up 4.00\n[    9.999] ublkcheck-init: agent start", 1)
    assert "kernel_init" in bootprofile.profile(bootprofile.boots(booted)[0], BOOT_EVENT)
