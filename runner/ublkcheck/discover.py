"""Which tests exist: the vm suites' GoogleTest cases, found through meson introspection
and each binary's --gtest_list_tests (which works on any host)."""
from __future__ import annotations

import fnmatch
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


@dataclass
class PlannedTest:
    name: str      # "<suite>.<GTestSuite>.<Test>"
    suite: str     # meson test name, e.g. "control"
    binary: str
    filter: str    # gtest filter selecting exactly this case
    timeout: int = 900
    kind: str = "gtest"  # "gtest": one case of a GoogleTest binary; "script": a kselftest script

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def parse_gtest_list(text: str) -> list[str]:
    """'Suite.\\n  Case  # GetParam() = ...' -> ['Suite.Case', ...]."""
    out, suite = [], None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("Running main()", "[")):
            continue
        if not line.startswith(" "):
            suite = line.split("#")[0].strip()
        elif suite:
            out.append(suite + line.split("#")[0].strip())
    return out


def meson_tests(build: Path, suite: str) -> list[dict]:
    if not (build / "build.ninja").is_file():
        raise UserError(f"{build}: not a meson build directory (run scripts/bootstrap.sh first)")
    p = subprocess.run(["meson", "introspect", str(build), "--tests"], capture_output=True, text=True)
    if p.returncode != 0:
        raise UserError(f"meson introspect {build} failed: {p.stderr.strip()}")
    return [t for t in json.loads(p.stdout)
            if any(s == suite or s.endswith(":" + suite) for s in t.get("suite", []))]


def discover(build: Path, suite: str = "vm", patterns: list[str] | None = None,
             exclude: list[str] | None = None) -> list[PlannedTest]:
    tests: list[PlannedTest] = []
    for mt in meson_tests(build, suite):
        binary = mt["cmd"][0]
        if not Path(binary).is_file():
            raise UserError(f"{binary} is not built: run `ninja -C {build}`")
        p = subprocess.run([binary, "--gtest_list_tests"], capture_output=True, text=True, timeout=60)
        for case in parse_gtest_list(p.stdout):
            tests.append(PlannedTest(name=f"{mt['name']}.{case}", suite=mt["name"], binary=binary,
                                     filter=case, timeout=int(mt.get("timeout", 900) or 900)))
    if not tests:
        raise UserError(f"--suite {suite}: no such meson suite in {build} (e.g. vm, or kselftests)")
    return select(tests, patterns, exclude) if (patterns or exclude) else tests


def plan_suites(build: Path, suites: str, source=None, kernel=None) -> list[PlannedTest]:
    """The tests of every suite named in `--suite` (comma-separated): meson suites of our
    build, and `kselftests`, the upstream scripts of the kernel's own source."""
    from . import kselftests
    tests: list[PlannedTest] = []
    for s in [x.strip() for x in suites.split(",") if x.strip()]:
        if s == kselftests.SUITE:
            tests += kselftests.planned(kselftests.stage(kselftests.source_tree(source, kernel)))
        else:
            tests += discover(build, s)
    return tests


def select(tests: list[PlannedTest], patterns: list[str] | None, exclude: list[str] | None) -> list[PlannedTest]:
    """--filter globs keep, --exclude globs drop; a selection that leaves nothing is refused
    with the option that emptied it."""
    if patterns:
        tests = [t for t in tests if any(fnmatch.fnmatch(t.name, p) for p in patterns)]
        if not tests:
            raise UserError(f"--filter {' '.join(map(repr, patterns))}: matches no test (names look like "
                            "control.Features.WordIsNonZeroAndHasIoctlEncoding or kselftests.test_null_01)")
    if exclude:
        tests = [t for t in tests if not any(fnmatch.fnmatch(t.name, p) for p in exclude)]
        if not tests:
            raise UserError(f"--exclude {' '.join(map(repr, exclude))}: leaves no test to run")
    return tests
