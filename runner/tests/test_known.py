"""Known kernel bugs: by report title, or by test name on one kernel; anything else fails."""
from ublkcheck import known
from ublkcheck.model import Report, RunResult, TestResult

ISSUES = [
    {"signature": "UBSAN: array-index-out-of-bounds in io_buffer_register_bvec", "release": "^7\\.2\\.", "note": "ubsan"},
    {"test": "recovery.Recovery.SeedLoop*", "release": "^6\\.12\\.", "note": "6.12 EIO under REISSUE"},
]


def rep(title):
    return Report(kind="x", title=title, signature=title, excerpt=title)


def run_of(release, *tests):
    return RunResult(run_id="r", kernel_spec="k", kernel_release=release, tests=list(tests))


def test_report_known_on_its_kernel_only():
    t = TestResult("io.Z", "io", "fail", message="kernel report during the test: U",
                   reports=[rep("UBSAN: array-index-out-of-bounds in io_buffer_register_bvec")])
    assert known.annotate(run_of("7.2.13+deb14-amd64", t), ISSUES) == 1 and t.properties["known_issue"] == "ubsan"
    t2 = TestResult("io.Z", "io", "fail", message="kernel report during the test: U", reports=list(t.reports))
    assert known.annotate(run_of("7.3-amd64", t2), ISSUES) == 0 and "known_issue" not in t2.properties


def test_assertion_failure_known_only_by_test_entry():
    seed = TestResult("recovery.Recovery.SeedLoopTenKillsUnderSequentialRead", "recovery", "fail", message="fio ended")
    other = TestResult("recovery.Recovery.Other", "recovery", "fail", message="assert")
    assert known.annotate(run_of("6.12.117+deb13-amd64", seed, other), ISSUES) == 1
    assert seed.properties["known_issue"] == "6.12 EIO under REISSUE" and "known_issue" not in other.properties
    again = TestResult(seed.name, "recovery", "fail", message="fio ended")
    assert known.annotate(run_of("7.2.13+deb14-amd64", again), ISSUES) == 0


def test_unknown_report_in_a_known_test_still_fails():
    t = TestResult("recovery.Recovery.SeedLoopTenKillsUnderSequentialRead", "recovery", "fail",
                   message="kernel report during the test: BUG", reports=[rep("BUG: kernel NULL pointer dereference in x")])
    assert known.annotate(run_of("6.12.117+deb13-amd64", t), ISSUES) == 0


def test_the_shipped_list_parses_and_every_entry_has_a_note_and_a_release():
    for k in known.load():
        assert k["note"] and k["release"] and ("signature" in k) != ("test" in k)


def test_one_entry_can_name_several_tests():
    from ublkcheck.known import _test_issue
    issues = [{"test": ["a.B.C", "d.E.*"], "release": "^6\\.1\\.", "note": "one bug"}]
    assert _test_issue("a.B.C", issues, "6.1.176")["note"] == "one bug"
    assert _test_issue("d.E.Anything", issues, "6.1.176")
    assert _test_issue("x.Y.Z", issues, "6.1.176") is None
    assert _test_issue("a.B.C", issues, "7.2.13") is None


def test_a_test_entry_with_a_message_excuses_only_that_failure():
    from ublkcheck.known import _test_issue
    issues = [{"test": "kselftests.test_generic_06", "release": "", "note": "kublk bug",
               "message": "dd unexpectedly exited successfully"}]
    assert _test_issue("kselftests.test_generic_06", issues, "7.2.13",
                       "exit 255\ndd unexpectedly exited successfully!\n")["note"] == "kublk bug"
    assert _test_issue("kselftests.test_generic_06", issues, "7.2.13",
                       "exit 255\ndd took 31 seconds to exit (>= 5s tolerance)!\n") is None
