"""Result writers: JUnit shaped as CI tools read it, KTAP that parses, JSON that round-trips."""
import json
import re
import xml.etree.ElementTree as ET

from ublkcheck.model import Report, RunResult, TestResult
from ublkcheck.results import load_results, summary_table, write_all


def sample_run() -> RunResult:
    rep = Report(kind="null-deref", title="BUG: kernel NULL pointer dereference in io_uring_cmd_done",
                 signature="x", excerpt="BUG: ...\nCall Trace:\n ublk_cmd_list_tw_cb+0x2a", line=3,
                 test="stress.Stress.SeedPanicWorkload")
    return RunResult(run_id="r1", kernel_spec="debian:sid", kernel_release="7.2.13+deb14-amd64",
                     features=0xfffff, host="h", accel="tcg", boot_seconds=5.5, boots=2,
                     started="2026-11-22T14:00:00+00:00", duration_s=12.0,
                     tests=[TestResult("control.Lifecycle.StartStopDelete", "control", "pass", 0.7),
                            TestResult("io.ReadOnly.X", "io", "skip", 0.0, skip_reason="kernel lacks UBLK_F_X"),
                            TestResult("stress.Stress.SeedPanicWorkload", "stress", "fail", 23.0,
                                       message="kernel report during the test: BUG", reports=[rep]),
                            TestResult("stress.Stress.Other", "stress", "error", 0.0, message="not reached")],
                     reports=[rep])


def test_json_round_trip(tmp_path):
    run = sample_run()
    write_all(run, tmp_path)
    d = json.loads((tmp_path / "results.json").read_text())
    assert d["schema_version"] == 1
    assert d["totals"] == {"pass": 1, "fail": 1, "skip": 1, "error": 1, "total": 4}
    back = load_results(tmp_path / "results.json")
    assert back.tests[2].reports[0].title == run.tests[2].reports[0].title
    assert back.kernel_release == run.kernel_release and back.boot_seconds == 5.5


def test_junit_structure(tmp_path):
    write_all(sample_run(), tmp_path)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.tag == "testsuites"
    assert root.get("tests") == "4" and root.get("failures") == "1" and root.get("errors") == "1"
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 4
    for s in root.findall("testsuite"):
        # The attributes the JUnit XSD (and Jenkins/GitLab/GitHub reporters) require.
        for a in ("name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"):
            assert s.get(a) is not None, a
        n = len(s.findall("testcase"))
        assert int(s.get("tests")) == n
        assert int(s.get("failures")) == len(s.findall("testcase/failure"))
        assert int(s.get("skipped")) == len(s.findall("testcase/skipped"))
    fail = root.find(".//testcase[@name='stress.Stress.SeedPanicWorkload']/failure")
    assert "io_uring_cmd_done" in fail.get("message")
    assert root.find(".//testcase[@name='io.ReadOnly.X']/skipped").get("message") == "kernel lacks UBLK_F_X"
    for c in cases:
        float(c.get("time"))


def parse_ktap(text: str) -> dict:
    """A small KTAP v1 parser (Documentation/dev-tools/ktap.rst): version line, plan, one
    result line per test, '#' diagnostics."""
    lines = text.splitlines()
    assert lines[0] == "KTAP version 1"
    plan = next(l for l in lines if re.fullmatch(r"1\.\.\d+", l))
    results = []
    for l in lines[1:]:
        m = re.fullmatch(r"(ok|not ok) (\d+) ([^#]+?)(?: # (SKIP)(?: (.*))?)?", l)
        if m:
            results.append((m.group(1), int(m.group(2)), m.group(3), m.group(4), m.group(5)))
        else:
            assert l.startswith("#") or l == plan, l
    return {"plan": int(plan[3:]), "results": results}


def test_ktap_parses(tmp_path):
    write_all(sample_run(), tmp_path)
    k = parse_ktap((tmp_path / "ktap.txt").read_text())
    assert k["plan"] == 4
    assert [r[1] for r in k["results"]] == [1, 2, 3, 4]
    assert k["results"][0][0] == "ok"
    assert k["results"][1][3] == "SKIP"
    assert k["results"][2][0] == "not ok"


def test_summary_table_names_problems():
    t = summary_table(sample_run())
    assert "FAIL" in t and "io_uring_cmd_done" in t and "1 passed, 1 failed, 1 skipped, 1 errors" in t


def test_suite_durations_sum_per_suite_slowest_first():
    from ublkcheck.model import RunResult, TestResult
    run = RunResult(run_id="r", kernel_spec="debian:sid", tests=[
        TestResult("io.A", "io", "pass", 2.0), TestResult("io.B", "io", "fail", 3.5),
        TestResult("control.C", "control", "pass", 9.0)])
    assert run.suite_durations() == {"control": 9.0, "io": 5.5}
    assert list(run.to_dict()["suite_durations"]) == ["control", "io"]


def test_summary_quotes_an_unexpected_failure_but_not_a_known_one():
    msg = ("../suites/recovery/test_recovery.cc:78\nValue of: r.ok()\n  Actual: false\n"
           "fio exit 1; stderr: fio: io_u error on file /dev/ublkb0: Input/output error")
    run = RunResult(run_id="r", kernel_spec="debian:sid", tests=[
        TestResult("recovery.R.New", "recovery", "fail", 1.0, message=msg),
        TestResult("recovery.R.Known", "recovery", "fail", 1.0, message="known.cc:1\nsecret words",
                   properties={"known_issue": "x"})])
    t = summary_table(run)
    assert "--- why recovery.R.New FAILED:" in t and "Input/output error" in t
    assert "secret words" not in t
