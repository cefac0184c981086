"""SKIPs against the previous run of the same kernel (history.py)."""
from ublkcheck import history
from ublkcheck.model import RunResult, TestResult


def run_of(**statuses):
    return RunResult("r", "debian:sid", kernel_release="7.2.13+deb14-amd64", started="2026-12-01T10:00:00Z",
                     tests=[TestResult(n, "control", s) for n, s in statuses.items()])


def test_a_feature_gone_shows_as_newly_skipped_tests(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = history.compare_and_record(run_of(a="pass", b="pass", c="skip"), tmp_path / "run1")
    assert first["previous"] is None and "no previous run" in history.summary_line(first)
    second = history.compare_and_record(run_of(a="skip", b="pass", c="skip"), tmp_path / "run2")
    assert second["skipped"] == 2 and second["previous"]["skipped"] == 1
    assert second["newly_skipped"] == [{"test": "a", "was": "pass"}]
    line = history.summary_line(second)
    assert "skips: 2" in line and "run1" in line and "NEWLY SKIPPED: a (was pass)" in line


def test_a_filtered_run_compares_only_the_tests_it_ran(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    history.compare_and_record(run_of(a="skip", b="skip", c="pass"), tmp_path / "full")
    s = history.compare_and_record(run_of(c="pass"), tmp_path / "filtered")
    assert s["previous"]["skipped"] == 0 and s["newly_skipped"] == [] and s["compared_tests"] == 1
    # The filtered run did not forget the others: a later full run still compares with them.
    s = history.compare_and_record(run_of(a="pass", b="skip", c="pass"), tmp_path / "again")
    assert s["no_longer_skipped"] == [{"test": "a", "now": "pass"}]


def test_the_summary_shows_the_skip_line():
    from ublkcheck.results import summary_table
    r = run_of(a="skip")
    r.skips = {"skipped": 1, "previous": {"run": "results/x", "started": "", "skipped": 0},
               "newly_skipped": [{"test": "a", "was": "pass"}], "no_longer_skipped": []}
    assert "NEWLY SKIPPED: a (was pass)" in summary_table(r)


def test_a_patched_run_compares_but_never_becomes_the_previous_run(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    history.compare_and_record(run_of(a="pass"), tmp_path / "stock")
    patched = run_of(a="skip")
    patched.patches = ["fixtures/mutants/x.patch"]
    assert history.compare_and_record(patched, tmp_path / "zoo")["newly_skipped"] == [{"test": "a", "was": "pass"}]
    again = history.compare_and_record(run_of(a="pass"), tmp_path / "stock2")
    assert again["previous"]["run"] == str(tmp_path / "stock") and again["newly_skipped"] == []
