"""bench.py's aggregation: medians over repeats, ratios to null_blk per job, skips, and the
comparison with the upstream selftest server's figures."""
from ublkcheck import bench
from ublkcheck.guest import bench as guest_bench


def run(target, job, rep, iops, error=""):
    return {"event": "run", "target": target, "job": job, "repeat": rep, "iops": iops, "error": error,
            "clat_p50_us": iops / 1000, "clat_p99_us": iops / 100, "lat_mean_us": 1.0}


def test_median_min_max_and_ratio():
    lines = [{"event": "plan", "targets": ["null_blk", "ublk_plain_per_queue"], "jobs": ["j"]}]
    lines += [run("null_blk", "j", r, v) for r, v in enumerate([100.0, 300.0, 200.0], 1)]
    lines += [run("ublk_plain_per_queue", "j", r, v) for r, v in enumerate([50.0, 10.0, 70.0], 1)]
    agg = bench.aggregate(lines)
    nb, ub = agg["results"]
    assert nb["target"] == "null_blk" and nb["iops"] == {"median": 200.0, "min": 100.0, "max": 300.0, "n": 3}
    assert ub["iops"]["median"] == 50.0 and ub["ratio_to_null_blk"] == 0.25
    assert nb["ratio_to_null_blk"] == 1.0


def test_failed_runs_are_kept_as_errors_not_averaged():
    lines = [run("null_blk", "j", 1, 100.0), run("ublk_x", "j", 1, 0.0, error="fio printed no JSON"),
             run("ublk_x", "j", 2, 40.0)]
    agg = bench.aggregate(lines)
    x = next(r for r in agg["results"] if r["target"] == "ublk_x")
    assert x["iops"]["n"] == 1 and x["errors"] == ["fio printed no JSON"]
    assert x["ratio_to_null_blk"] == 0.4


def test_skip_and_reference_comparison():
    lines = [{"event": "skip", "target": "ublk_zero_copy_per_queue", "reason": "--zero-copy: this kernel lacks"},
             run("ublk_plain_per_queue", bench.REF_JOB, 1, 25500.0)]
    agg = bench.aggregate(lines)
    assert agg["skipped"] == {"ublk_zero_copy_per_queue": "--zero-copy: this kernel lacks"}
    ref = {r["target"]: r for r in bench.reference_comparison(agg)}
    assert ref["ublk_plain_per_queue"]["ratio"] == 0.5
    assert ref["ublk_plain_per_io_4"]["ours_iops"] is None
    agg["reference"] = bench.reference_comparison(agg)
    assert "SKIP --zero-copy" in bench.table(agg)


def test_profiles_cover_the_issue_matrix():
    std = guest_bench.jobs("standard")
    assert len(std) == 1 + 2 * 2 * 3
    assert len(guest_bench.jobs("full")) == 1 + 2 * 2 * 9
    names = [t[0] for t in guest_bench.targets("standard")]
    assert names[0] == "null_blk"
    for mode in ("plain", "user_copy", "zero_copy", "auto_buf_reg"):
        for model in ("per_queue", "per_io_2", "per_io_4"):
            assert f"ublk_{mode}_{model}" in names
    assert sum(1 for t in guest_bench.targets("standard") if t[3]) == 2  # pinned (imbalanced)
    assert [t[0] for t in guest_bench.targets("modes")] == names
    assert guest_bench.jobs("modes") == guest_bench.jobs("quick")


def test_same_guest_kublk_and_compare_build():
    lines = [run("ublk_plain_per_queue", bench.REF_JOB, 1, 30000.0),
             run("kublk_per_queue", bench.REF_JOB, 1, 20000.0),
             run("ublk_plain_per_queue@alt", bench.REF_JOB, 1, 45000.0)]
    agg = bench.aggregate(lines)
    ref = {r["target"]: r for r in bench.reference_comparison(agg)}
    assert ref["ublk_plain_per_queue"]["kublk_source"] == "same guest"
    assert ref["ublk_plain_per_queue"]["ratio"] == 1.5
    assert ref["ublk_plain_per_io_4"]["kublk_source"] == "DESIGN.md figure"
    assert "ublk_plain_batch" not in ref  # no kublk batch figure measured: no comparison
    agg2 = bench.aggregate(lines + [run("ublk_plain_batch", bench.REF_JOB, 1, 33000.0),
                                    run("kublk_batch", bench.REF_JOB, 1, 30000.0)])
    ref2 = {r["target"]: r for r in bench.reference_comparison(agg2)}
    assert ref2["ublk_plain_batch"]["ratio"] == 1.1
    alt = bench.alt_comparison(agg)
    assert alt == [{"target": "ublk_plain_per_queue", "job": bench.REF_JOB, "base_iops": 30000.0,
                    "alt_iops": 45000.0, "alt_over_base": 1.5,
                    "paired": {"median": 1.5, "min": 1.5, "max": 1.5, "n": 1, "wins": 1}}]
    names = [t[0] for t in guest_bench.targets("quick", alt=True, kublk=True)]
    assert "ublk_plain_per_io_4_pinned_q0@alt" in names and "kublk_per_io_4" in names
    assert "ublk_plain_batch" in names


def test_a_server_that_never_answers_skips_its_target_without_a_traceback():
    r = guest_bench.sh(["sleep", "5"], timeout=1)
    assert r.returncode == 124 and "no answer within 1 s" in r.stderr


def test_paired_ratio_follows_the_rounds_not_the_medians():
    # A slow round (host steal time) drags both sides; the pairs' ratio stays put while
    # the medians' ratio does not show that ours led in every round.
    ours = [10000.0, 20000.0, 30000.0, 11000.0]
    theirs = [9000.0, 18000.0, 27000.0, 30000.0]
    lines = [run("ublk_plain_per_queue", bench.REF_JOB, r, v) for r, v in enumerate(ours, 1)]
    lines += [run("kublk_per_queue", bench.REF_JOB, r, v) for r, v in enumerate(theirs, 1)]
    lines.append(run("kublk_per_queue", bench.REF_JOB, 5, 99999.0))  # no partner: ignored
    agg = bench.aggregate(lines)
    ref = {r["target"]: r for r in bench.reference_comparison(agg)}["ublk_plain_per_queue"]
    assert ref["paired"] == {"median": 1.111, "min": 0.367, "max": 1.111, "n": 4, "wins": 3}
    agg["reference"] = [ref]
    assert "round by round x1.111 (x0.367..x1.111, ahead in 3 of 4)" in bench.table(agg)
    # The DESIGN.md figure is no round: no pairs.
    assert bench.paired_ratio(agg, "ublk_plain_per_io_4", "kublk_per_io_4", bench.REF_JOB) is None
