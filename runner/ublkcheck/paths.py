"""Where the repository's own files are, defined once for every stage."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KCONFIG = REPO / "ci" / "kconfig"
KNOWN_ISSUES = REPO / "ci" / "known-issues.json"
MUTANTS = REPO / "fixtures" / "mutants"
