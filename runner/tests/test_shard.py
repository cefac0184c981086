"""--shard: parsing, a deterministic disjoint split, and an empty shard that boots nothing."""
import argparse
import json
import random

import pytest

from ublkcheck import discover, pipeline, runargs, vm
from ublkcheck.discover import PlannedTest
from ublkcheck.errors import UserError
from ublkcheck.kernel import Kernel
from ublkcheck.results import load_results
from ublkcheck.shard import parse_shard, select_shard

NAMES = [f"{s}.Case.T{i}" for s in ("control", "io", "stress") for i in range(7)]


def planned(names):
    return [PlannedTest(n, n.split(".")[0], "/bin/true", n.split(".", 1)[1]) for n in names]


@pytest.mark.parametrize("text,want", [("1/1", (1, 1)), ("2/3", (2, 3)), (" 3/3 ", (3, 3))])
def test_parse_shard(text, want):
    assert parse_shard(text) == want


@pytest.mark.parametrize("text,needle", [("0/2", "1 <= I <= N"), ("3/2", "1 <= I <= N"), ("1/0", "1 <= I <= N"),
                                         ("a/2", "whole numbers"), ("1", "whole numbers"), ("1/2/3", "whole numbers"),
                                         ("1.5/2", "whole numbers"), ("", "whole numbers")])
def test_parse_shard_rejects(text, needle):
    with pytest.raises(UserError, match=needle):
        parse_shard(text)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 40])
def test_shards_partition_the_tests(count):
    tests = planned(NAMES)
    parts = [select_shard(tests, i, count) for i in range(1, count + 1)]
    names = [t.name for p in parts for t in p]
    assert sorted(names) == sorted(NAMES)          # union is everything ...
    assert len(names) == len(set(names))           # ... and no test is in two shards
    assert max(map(len, parts)) - min(map(len, parts)) <= 1   # dealt evenly


def test_split_ignores_input_order_and_deals_round_robin():
    tests = planned(NAMES)
    shuffled = tests[:]
    random.Random(7).shuffle(shuffled)
    for i in (1, 2, 3):
        assert [t.name for t in select_shard(shuffled, i, 3)] == [t.name for t in select_shard(tests, i, 3)]
    ordered = sorted(NAMES)
    assert [t.name for t in select_shard(tests, 2, 3)] == ordered[1::3]


def run_args(*extra):
    ap = argparse.ArgumentParser()
    runargs.add_run_args(ap)
    return runargs.request(ap.parse_args(list(extra)))


def test_empty_shard_writes_a_run_and_boots_nothing(tmp_path, monkeypatch):
    kernel = Kernel(spec="debian:sid", release="7.2.13+deb14-amd64", vmlinuz=tmp_path / "vmlinuz",
                    modules=tmp_path / "7.2.13+deb14-amd64")
    monkeypatch.setattr(pipeline, "resolve_kernel", lambda args: (None, kernel))
    monkeypatch.setattr(vm, "qemu_binary", lambda: "/usr/bin/qemu-system-x86_64")
    monkeypatch.setattr(vm, "kvm_usable", lambda: False)
    monkeypatch.setattr(discover, "discover", lambda *a, **k: planned(["io.Case.Only"]))

    def no_boot(*a, **k):
        raise AssertionError("an empty shard must not boot a guest")
    import ublkcheck.orchestrate as orchestrate
    monkeypatch.setattr(orchestrate, "Orchestrator", no_boot)
    out = tmp_path / "r"
    run, got = pipeline.execute(run_args("--shard", "2/2", "--results", str(out)), None)
    assert got == out and run.tests == [] and run.shard == "2/2"
    d = json.loads((out / "results.json").read_text())
    assert d["shard"] == "2/2" and d["totals"]["total"] == 0
    assert d["kernel_release"] == "7.2.13+deb14-amd64"
    assert (out / "junit.xml").is_file() and (out / "ktap.txt").is_file()


def test_shard_with_a_guest_command_is_refused():
    with pytest.raises(UserError, match="does not apply"):
        pipeline.execute(run_args("--shard", "1/2"), ["true"])


def test_bad_shard_fails_before_fetching_a_kernel(monkeypatch):
    monkeypatch.setattr(pipeline, "resolve_kernel", lambda args: pytest.fail("fetched a kernel"))
    with pytest.raises(UserError, match="whole numbers"):
        pipeline.execute(run_args("--shard", "x"), None)


def test_old_results_without_shard_fields_load(tmp_path):
    old = {"schema_version": 1, "run_id": "r", "kernel_spec": "debian:sid", "tests": [], "reports": [],
           "totals": {"pass": 0, "fail": 0, "skip": 0, "error": 0, "total": 0}}
    (tmp_path / "results.json").write_text(json.dumps(old))
    run = load_results(tmp_path / "results.json")
    assert run.shard == "" and run.merged_from == [] and run.shards == []
