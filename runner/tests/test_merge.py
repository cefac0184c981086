"""ublkcheck merge: shards of one run join into the run an unsharded invocation writes."""
import subprocess
from pathlib import Path

import pytest

from synth import SID, run, tr, unsharded, written
from ublkcheck.diff import diff_runs, regressions
from ublkcheck.errors import UserError
from ublkcheck.merge import merge_runs, missing_shards
from ublkcheck.results import load_results
from ublkcheck.shard import select_shard

REPO = Path(__file__).resolve().parents[2]


def verdicts(r):
    """(test, status) pairs: what `two shards merged == one unsharded run` compares."""
    return {(t.name, t.status) for t in r.tests}


def shards_of(whole, count, tmp_path):
    dirs = []
    for i in range(1, count + 1):
        part = run(select_shard(whole.tests, i, count), shard=f"{i}/{count}", duration_s=10.0 * i, boots=i)
        dirs.append(written(part, tmp_path / f"shard{i}"))
    return dirs


def cli(*args):
    return subprocess.run([str(REPO / "ublkcheck"), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_two_shards_merged_equal_one_unsharded_run(tmp_path):
    whole = unsharded()
    dirs = shards_of(whole, 2, tmp_path)
    p = cli("merge", *dirs, "--out", tmp_path / "merged")
    assert p.returncode == 1, p.stderr          # the run has failures, as the unsharded one
    merged = load_results(tmp_path / "merged" / "results.json")
    assert verdicts(merged) == verdicts(whole)
    d = diff_runs(whole, merged)
    assert regressions(d) == 0 and not any(d.values())
    assert [t.name for t in merged.tests] == sorted(t.name for t in whole.tests)
    # The oops stays attached to its test, with its excerpt.
    seed = next(t for t in merged.tests if t.name == "stress.Stress.Seed")
    assert seed.reports[0].title.endswith("io_uring_cmd_done")
    assert len(merged.reports) == 1
    assert merged.merged_from == [str(d) for d in dirs]
    assert merged.duration_s == 20.0 and merged.boots == 3     # wall time of the slower shard; boots add
    assert [s["shard"] for s in merged.shards] == ["1/2", "2/2"]
    assert merged.shard == "" and merged.kernel_release == SID
    assert "merged 2 run(s), 7 tests" in p.stdout
    assert (tmp_path / "merged" / "junit.xml").is_file() and (tmp_path / "merged" / "ktap.txt").is_file()


def test_merge_accepts_an_empty_shard_without_a_release(tmp_path):
    whole = run([tr("a.X.One")])
    empty = run([], release="", shard="2/2", boot_seconds=None, boots=0, duration_s=0.0)
    m = merge_runs([("s1", run(whole.tests, shard="1/2")), ("s2", empty)])
    assert verdicts(m) == verdicts(whole) and m.kernel_release == SID and m.boot_seconds == 5.5


def test_different_kernels_are_refused_naming_both_dirs():
    a = run([tr("a.X.One")])
    b = run([tr("a.X.Two")], release="6.12.48+deb13-amd64")
    with pytest.raises(UserError, match=r"dirA ran kernel 7\.2.* but dirB ran 6\.12"):
        merge_runs([("dirA", a), ("dirB", b)])


def test_a_test_in_two_shards_is_refused_naming_it():
    a = run([tr("a.X.One"), tr("a.X.Two")])
    b = run([tr("a.X.Two")])
    with pytest.raises(UserError, match=r"test a\.X\.Two is in both d1 and d2"):
        merge_runs([("d1", a), ("d2", b)])


def test_different_patches_are_refused():
    a = run([tr("a.X.One")], patches=["m.patch"])
    b = run([tr("a.X.Two")])
    with pytest.raises(UserError, match="patches"):
        merge_runs([("d1", a), ("d2", b)])


def test_missing_shards_are_named():
    assert missing_shards([run([], shard="1/3"), run([], shard="3/3")]) == ["2/3"]
    assert missing_shards([run([], shard="1/2"), run([], shard="2/2")]) == []


def test_merge_cli_errors_are_one_line(tmp_path):
    a = written(run([tr("a.X.One")]), tmp_path / "a")
    for args, needle in [((tmp_path / "nope", "--out", tmp_path / "m"), "no such results.json"),
                         ((a, "--out", a), "is one of the inputs")]:
        p = cli("merge", *args)
        assert p.returncode == 2 and needle in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    p = cli("merge", tmp_path / "bad", "--out", tmp_path / "m")
    assert p.returncode == 2 and "not a ublkcheck results.json" in p.stderr
