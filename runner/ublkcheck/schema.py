"""results.json and matrix.json are checked against results/schema.json with a real
validator (Debian's python3-jsonschema) before anything reads them: a file that does not
match is named with its first mismatch, in one line."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .errors import UserError
from .paths import REPO

SCHEMA = REPO / "results" / "schema.json"


@lru_cache(maxsize=None)
def _validator(kind: str):
    try:
        import jsonschema
    except ImportError:
        raise UserError("reading results needs python3-jsonschema (apt install python3-jsonschema)") from None
    schema = json.loads(SCHEMA.read_text())
    top = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{kind}"}
    return jsonschema.Draft202012Validator(top)


def check(doc, kind: str, path: Path) -> None:
    """Raises UserError naming `path` and the first place where `doc` breaks the schema."""
    err = next(iter(sorted(_validator(kind).iter_errors(doc), key=lambda e: list(e.absolute_path))), None)
    if err is None:
        return
    where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
    raise UserError(f"{path}: does not match {SCHEMA.relative_to(REPO)} ({kind}): at {where}: {err.message}")
