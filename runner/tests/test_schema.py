"""diff, merge and report read results through results/schema.json: every results.json the
runner writes matches it, and a file that does not is named with its first mismatch."""
import json
import subprocess

import pytest

from synth import run, tr, written
from ublkcheck.errors import UserError
from ublkcheck.paths import REPO
from ublkcheck.rundirs import load_kernel_runs, load_run


def test_what_the_runner_writes_matches_the_schema(tmp_path):
    r = run([tr("io.A.B", "pass"), tr("io.A.C", "skip")])
    written(r, tmp_path / "r")
    assert load_run(tmp_path / "r").tests[0].name == "io.A.B"


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.pop("run_id"), "'run_id' is a required property"),
    (lambda d: d["tests"][0].update(status="passed"), "at tests/0/status"),
    (lambda d: d.update(schema_version=2), "at schema_version"),
    (lambda d: d["tests"][0].update(duration_s=-1), "at tests/0/duration_s"),
])
def test_a_results_json_that_does_not_match_is_named_with_its_first_mismatch(tmp_path, mutate, needle):
    r = run([tr("io.A.B", "pass")])
    written(r, tmp_path / "r")
    f = tmp_path / "r" / "results.json"
    d = json.loads(f.read_text())
    mutate(d)
    f.write_text(json.dumps(d))
    with pytest.raises(UserError) as e:
        load_run(tmp_path / "r")
    assert str(f) in str(e.value) and "results/schema.json" in str(e.value) and needle in str(e.value)


def test_a_matrix_json_that_does_not_match_is_refused(tmp_path):
    (tmp_path / "matrix.json").write_text(json.dumps({"schema_version": 1, "kernels": [{"dir": "x"}]}))
    with pytest.raises(UserError, match="at kernels/0: 'spec' is a required property"):
        load_kernel_runs(tmp_path)


def test_diff_of_a_broken_file_is_one_line_exit_2(tmp_path):
    r = run([tr("io.A.B", "pass")])
    written(r, tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text(json.dumps({"schema_version": 1}))
    p = subprocess.run([str(REPO / "ublkcheck"), "diff", str(tmp_path / "a"), str(tmp_path / "b")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "does not match results/schema.json" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
