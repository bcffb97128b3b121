"""Checking the study specs an access request carries.

When the study language's parser (passerelle.query.parse) is installed, every spec is parsed
with it and its first error (with its field path) is reported; otherwise only the shape is
checked (a JSON object that carries no SQL or code).
"""

from __future__ import annotations

import importlib
from typing import Any

from passerelle.access.errors import Invalid

FORBIDDEN_KEYS = frozenset({"sql", "code", "python", "script"})


def _parser() -> Any | None:
    try:
        mod = importlib.import_module("passerelle.query.parse")
    except ModuleNotFoundError:
        return None
    for name in ("parse_study", "parse"):
        fn = getattr(mod, name, None)
        if callable(fn):
            return fn
    return None


def validate_studies(studies: list[dict[str, Any]]) -> None:
    parse = _parser()
    for i, spec in enumerate(studies):
        if not isinstance(spec, dict) or not spec:
            raise Invalid(f"studies[{i}]: a study spec must be a non-empty JSON object")
        bad = FORBIDDEN_KEYS.intersection(k.lower() for k in spec)
        if bad:
            raise Invalid(f"studies[{i}]: a study spec never carries {sorted(bad)[0]}")
        if parse is None:
            continue
        try:
            result = parse(spec)
        except Exception as exc:  # the parser's own typed error; its message names the path
            raise Invalid(f"studies[{i}]: {_first_error(exc)}") from None
        errors = getattr(result, "errors", None)
        if errors:
            raise Invalid(f"studies[{i}]: {errors[0]}")


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "problems", None) or getattr(exc, "errors", None)
    if isinstance(errors, list | tuple) and errors:
        return str(errors[0])
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
