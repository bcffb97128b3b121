"""The one place where federation meets the study language and the privacy package.

A node receives a study as data (the serialized spec), parses it with the study language's own
parser, runs it with `engine_for(store).execute(study)`, and applies its disclosure policy with
the privacy package's `protect(result, policy)` before anything leaves. Each of these is looked
up here, once; until a package lands, a clearly named interim stand-in is used and
`capabilities()` says which (the node's /health shows it).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passerelle.cdm.stores.base import Store
from passerelle.errors import PasserelleError
from passerelle.federation.errors import Refused
from passerelle.query.result import AggregateTable, StudyResult


def _find(module: str, *names: str) -> Callable[..., Any] | None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("passerelle"):
            return None
        raise
    for name in names:
        fn = getattr(mod, name, None)
        if callable(fn):
            return fn
    return None


# -- the study language -------------------------------------------------------------------------
@dataclass
class StudyLanguage:
    """Parse a spec and run it on a store, with whatever the query package offers."""

    source: str
    parse: Callable[[dict[str, Any]], Any]
    run: Callable[[Store, Any], StudyResult]


def _errors_text(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, (list, tuple)) and errors:
        return "; ".join(str(e) for e in errors[:10])
    return str(exc)


def _wrap_parse(fn: Callable[[Any], Any]) -> Callable[[dict[str, Any]], Any]:
    def parse(spec: dict[str, Any]) -> Any:
        try:
            out = fn(spec)
        except Refused:
            raise
        except (PasserelleError, ValueError, TypeError, KeyError) as exc:
            raise Refused(
                f"invalid study: {_errors_text(exc)}", code="invalid_study", status=422
            ) from None
        # Parsers may return (model, warnings) or a result object holding errors.
        errors = getattr(out, "errors", None)
        if errors:
            raise Refused(f"invalid study: {_errors_text(out)}", code="invalid_study", status=422)
        for attr in ("model", "study", "value"):
            inner = getattr(out, attr, None)
            if inner is not None and not isinstance(out, tuple) and hasattr(out, "errors"):
                return inner
        if isinstance(out, tuple) and out:
            return out[0]
        return out

    return parse


def study_language() -> StudyLanguage:
    parse = _find("passerelle.query.parse", "parse_study", "parse_spec", "parse")
    engine_for = _find("passerelle.query.engines", "engine_for")
    if parse is not None and engine_for is not None:
        return StudyLanguage(
            "passerelle.query.engines", _wrap_parse(parse), lambda s, m: engine_for(s).execute(m)
        )
    reference = _find("passerelle.query.reference", "ReferenceEngine")
    if parse is not None and reference is not None:

        def run_reference(store: Store, model: Any) -> StudyResult:
            return reference.from_store(store, model).execute(model)  # type: ignore[attr-defined]

        return StudyLanguage("passerelle.query.reference", _wrap_parse(parse), run_reference)
    from passerelle.federation import interim_engine

    return StudyLanguage(
        "passerelle.federation.interim_engine", interim_engine.parse, interim_engine.execute
    )


# -- the privacy package ------------------------------------------------------------------------
@dataclass
class Disclosure:
    """A node's disclosure policy, as the federation needs it."""

    source: str
    name: str
    min_cell: int
    rounding: int
    policy: Any
    protect: Callable[[StudyResult, Any], StudyResult]
    purposes: tuple[str, ...] | None = None  # None: the policy does not restrict purposes
    output_types: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "min_cell": self.min_cell,
            "rounding": self.rounding,
            "source": self.source,
        }


def _tuple_or_none(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(str(v.value if hasattr(v, "value") else v) for v in value) or None


def load_disclosure(path: Path | None) -> Disclosure:
    loader = _find("passerelle.privacy.policy", "load_policy", "load")
    protect = _find("passerelle.privacy.disclosure", "protect") or _find(
        "passerelle.privacy", "protect"
    )
    if loader is not None and protect is not None:
        if path is not None:
            policy = loader(path)
        else:
            default = _find("passerelle.privacy.policy", "default_policy")
            policy = default() if default is not None else loader(None)
        label = getattr(policy, "label", None) or str(getattr(policy, "name", "policy"))
        return Disclosure(
            source="passerelle.privacy",
            name=str(label),
            min_cell=int(getattr(policy, "min_cell", 11)),
            rounding=int(getattr(policy, "rounding", 1) or 1),
            policy=policy,
            protect=protect,
            purposes=_tuple_or_none(getattr(policy, "purposes", None)),
            output_types=_tuple_or_none(getattr(policy, "output_types", None)),
        )
    return _interim_disclosure(path)


# INTERIM: used only until passerelle.privacy lands. Counts below min_cell are withheld, the
# others rounded to the nearest `rounding`; statistics and person-time are withheld entirely.
def _interim_disclosure(path: Path | None) -> Disclosure:
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
    min_cell = int(data.get("min_cell", 11))
    rounding = int(data.get("rounding", 5))
    name = str(data.get("policy", "interim"))

    def protect(result: StudyResult, _policy: Any) -> StudyResult:
        tables = []
        for t in result.tables:
            flags: dict[tuple[int, str], frozenset[str]] = {}
            rows = []
            for i, row in enumerate(t.rows):
                out = list(row)
                for j, col in enumerate(t.columns):
                    v = row[j]
                    if col.kind == "count" and isinstance(v, int):
                        if 0 < v < min_cell:
                            out[j], flags[(i, col.name)] = None, frozenset({"suppressed"})
                        elif rounding > 1:
                            out[j] = int(rounding * math.floor(v / rounding + 0.5))
                            flags[(i, col.name)] = frozenset({"rounded"})
                    elif col.kind in ("statistic", "person_time"):
                        out[j], flags[(i, col.name)] = None, frozenset({"suppressed"})
                rows.append(tuple(out))
            tables.append(AggregateTable(t.name, t.analysis, t.columns, rows, flags))
        return StudyResult(result.study, result.engine, tables, policy=f"{name} (interim)")

    return Disclosure(
        source="passerelle.federation.study (interim)",
        name=name,
        min_cell=min_cell,
        rounding=rounding,
        policy=data,
        protect=protect,
        purposes=_tuple_or_none(data.get("purposes")),
        output_types=_tuple_or_none(data.get("output_types")),
    )


def capabilities(language: StudyLanguage, disclosure: Disclosure) -> dict[str, str]:
    return {"study_language": language.source, "disclosure": disclosure.source}
