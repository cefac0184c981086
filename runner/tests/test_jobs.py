"""run --jobs N: N shards in guests at once, merged into one run."""
import pytest

from synth import run, tr
from ublkcheck import pipeline
from ublkcheck.errors import UserError
from ublkcheck.pipeline import RunRequest


def test_jobs_run_every_shard_at_once_and_merge_them(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "resolve_kernel", lambda req: (None, object()))
    monkeypatch.setattr(pipeline, "build_module", lambda *a, **k: calls.append("build"))
    monkeypatch.setattr("ublkcheck.initramfs.build", lambda k, *a: calls.append("initramfs"))
    names = ["a.T.One", "a.T.Two", "b.T.Three"]

    def fake_execute(part, label=None):
        i, n = map(int, part.shard.split("/"))
        mine = [tr(x) for j, x in enumerate(names) if j % n == i - 1]
        out = tmp_path / "top" / f"job-{i}-of-{n}"
        out.mkdir(parents=True)
        calls.append(part.shard)
        r = run(mine, shard=part.shard)
        r.boot_profiles = [{"total": 5.0 + i}]
        return r, out
    monkeypatch.setattr(pipeline, "execute", fake_execute)
    merged, top = pipeline.run_jobs(RunRequest(results=str(tmp_path / "top")), 2)
    assert calls[:2] == ["build", "initramfs"] and sorted(calls[2:]) == ["1/2", "2/2"]
    assert sorted(t.name for t in merged.tests) == sorted(names)
    assert (top / "results.json").is_file() and (top / "junit.xml").is_file()
    assert merged.boot_profiles == [{"total": 6.0}, {"total": 7.0}]


@pytest.mark.parametrize("req,why", [(RunRequest(shard="1/2"), "drop --shard"),
                                     (RunRequest(coverage=True), "does not combine with --coverage")])
def test_jobs_refuse_what_they_cannot_split(req, why):
    with pytest.raises(UserError, match=why):
        pipeline.run_jobs(req, 2)
