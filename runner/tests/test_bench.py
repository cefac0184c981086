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
    # No kublk in this guest: nothing to compare with (no figures from another sitting).
    assert bench.reference_comparison(agg) == []
    agg = bench.aggregate(lines + [run("kublk_per_queue", bench.REF_JOB, 1, 51000.0)])
    ref = {r["target"]: r for r in bench.reference_comparison(agg)}
    assert ref["ublk_plain_per_queue"]["ratio"] == 0.5 and list(ref) == ["ublk_plain_per_queue"]
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
    assert "ublk_plain_per_io_4" not in ref  # kublk did not run per-I/O: no comparison
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
    # No kublk_per_io_4 rounds: no pairs.
    assert bench.paired_ratio(agg, "ublk_plain_per_io_4", "kublk_per_io_4", bench.REF_JOB) is None


def test_cpu_cost_per_io_from_proc_stat_deltas():
    import os
    hz = os.sysconf("SC_CLK_TCK")
    # 2*hz busy ticks = 2 CPU seconds over 1000 I/Os; 2*hz idle ticks; 500 switches.
    c = guest_bench.cpu_cost((100, 50, 1000), (100 + 2 * hz, 50 + 2 * hz, 1500), 1000)
    assert c == {"cpu_us_per_io": 2000.0, "ctxt_per_io": 0.5, "idle_frac": 0.5}
    assert guest_bench.cpu_cost((0, 0, 0), (0, 0, 0), 0) == {"cpu_us_per_io": None, "ctxt_per_io": None,
                                                             "idle_frac": None}


PERF_REPORT = """# Samples: 24K of event 'cpu-clock'
#
# Overhead  Command       Shared Object      Symbol
# ........  ............  .................  ......
#
    30.07%  fio           [kernel.kallsyms]  [k] blkdev_read_iter
    26.11%  swapper       [kernel.kallsyms]  [k] default_idle
     8.86%  ublk-io-0     [kernel.kallsyms]  [k] rep_movs_alternative
     4.00%  ublk-io-1     [ublk_drv]         [k] ublk_dispatch_req
     3.50%  fio           fio                [.] td_io_queue
     0.50%  ublk-io-0     ublk-fixture       [.] ublk::Server::Thread::run
     0.40%  kworker/0:1   [kernel.kallsyms]  [k] process_one_work
     0.30%  fio           [vdso]             [.] __vdso_clock_gettime
"""


def test_perf_report_becomes_shares_of_idle_fio_and_server():
    rows = guest_bench.parse_perf_report(PERF_REPORT, 40)
    assert rows[0] == [30.07, "fio", "[kernel.kallsyms]", "[k]", "blkdev_read_iter"]
    assert len(guest_bench.parse_perf_report(PERF_REPORT, 3)) == 3
    by_comm = [r[:3] for r in rows]
    p = bench.profile_summary({"event": "profile", "target": "ublk_plain_per_queue", "job": "j",
                               "by_comm_dso": by_comm, "by_symbol": rows})
    assert p["share_pct"] == {"idle": 26.11, "fio_user": 3.8, "fio_kernel": 30.07,
                              "server_user": 0.5, "server_kernel": 12.86, "other": 0.4}
    assert [s["symbol"] for s in p["top_server_symbols"]] == [
        "[k] rep_movs_alternative", "[k] ublk_dispatch_req", "[.] ublk::Server::Thread::run"]
    # One symbol in two server threads is one line, summed.
    two = rows + [[1.14, "ublk-io-1", "[kernel.kallsyms]", "[k]", "rep_movs_alternative"]]
    merged = bench.profile_summary({"job": "j", "by_comm_dso": by_comm, "by_symbol": two})
    assert merged["top_server_symbols"][0] == {"pct": 10.0, "dso": "[kernel.kallsyms]",
                                               "symbol": "[k] rep_movs_alternative"}
    agg = bench.aggregate([run("ublk_plain_per_queue", "j", 1, 1000.0),
                           {"event": "profile", "target": "ublk_plain_per_queue", "job": "j",
                            "by_comm_dso": by_comm, "by_symbol": rows},
                           {"event": "profile", "target": "kublk_per_queue", "job": "j", "error": "perf: no"}])
    text = bench.table(agg)
    assert "profile ublk_plain_per_queue: idle 26.1%, fio 30.1% kernel + 3.8% user, server 12.9% kernel" in text
    assert "profile kublk_per_queue: ERROR perf: no" in text


def test_cpu_columns_are_medians_and_absent_in_old_files():
    lines = [dict(run("ublk_x", "j", r, 100.0), cpu_us_per_io=v, ctxt_per_io=0.1, idle_frac=0.2)
             for r, v in enumerate([50.0, 70.0, 60.0], 1)]
    row = bench.aggregate(lines)["results"][0]
    assert row["cpu_us_per_io"] == 60.0 and row["idle_frac"] == 0.2
    ref = [dict(run(t, bench.REF_JOB, 1, 100.0), cpu_us_per_io=v)
           for t, v in (("ublk_plain_per_queue", 150.0), ("kublk_per_queue", 160.0))]
    agg = bench.aggregate(ref)
    agg["reference"] = bench.reference_comparison(agg)
    assert agg["reference"][0]["cpu_us_per_io"] == {"ours": 150.0, "kublk": 160.0}
    assert "CPU per I/O 150 vs 160 us" in bench.table(agg)
    old = bench.aggregate([run("ublk_x", "j", 1, 100.0)])
    assert "cpu_us_per_io" not in old["results"][0]
    assert bench.table(old).splitlines()[1].rstrip().endswith("-     -")


def test_perf_flag_needs_perf_on_the_host(monkeypatch, tmp_path):
    import argparse
    import pytest
    from ublkcheck.errors import UserError
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "ublk-fixture").write_text("")
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    args = argparse.Namespace(repeats=1, runtime=1, build=tmp_path, profile="quick", only="",
                              compare_build=None, kublk=None, perf=True)
    with pytest.raises(UserError, match="apt install linux-perf"):
        bench.bench(args, None)
