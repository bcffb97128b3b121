"""Spec text (YAML or JSON) or a dict -> a validated `Study`, or every error with its path.

The spec is a tree of typed fields only: every value is a name from a fixed list, a number, a
date or a list of concept ids, so no text a user writes can ever become SQL. Unknown keys are
errors (with a suggestion), duplicate YAML keys are errors, and all problems are reported at
once as a `SpecError` whose lines read ``cohort.criteria[0].window: start 30 is after end 10``.

`dump_study` is the inverse: the canonical spec dict of a model (defaults left out), so
``parse_study(dump_study(s)) == s``; it is also the wire format between hub and nodes.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from passerelle.errors import UserError
from passerelle.query import model as m


@dataclass(frozen=True)
class SpecProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(UserError):
    """A spec that does not describe a valid study; `problems` lists every error found."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        lines = [str(p) for p in problems]
        head = f"the study spec has {len(lines)} error{'s' if len(lines) != 1 else ''}"
        super().__init__(head + ":\n  " + "\n  ".join(lines))


DOMAIN_KEYS = tuple(d.value for d in m.Domain)
EVENT_FILTER_KEYS = ("dates", "value", "unit", "value_concepts", "visit_type")
CONCEPT_SET_KEYS = (
    "concepts",
    "descendants",
    "exclude",
    "exact",
    "exclude_exact",
    "source_concepts",
)
SEX_NAMES = {"male": m.Sex.MALE.value, "female": m.Sex.FEMALE.value}
SIMPLE_DIMENSIONS = {
    "sex": m.SEX,
    "index_year": m.INDEX_YEAR,
    "index_month": m.INDEX_MONTH,
    "site": m.SITE,
    "visit_type": m.VISIT_TYPE,
    "entry_concept": m.ENTRY_CONCEPT,
}
ANALYSIS_KINDS = ("count", "outcome", "distribution", "attrition", "survival")


# --------------------------------------------------------------------------------------------
# Loading text
# --------------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise SpecError([SpecProblem("", f"line {key_node.start_mark.line + 1}: key "
                                         f"{key!r} appears twice")])  # fmt: skip
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_text(text: str) -> Any:
    """YAML (or JSON, which YAML reads) text -> plain Python data."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML or JSON"
        raise SpecError([SpecProblem("", f"{where}{problem}")]) from None


def parse_study(spec: str | Mapping[str, Any]) -> m.Study:
    """A validated Study from spec text or a dict; raises SpecError listing every problem."""
    data = load_text(spec) if isinstance(spec, str) else spec
    p = _Parser()
    study = p.study(data)
    if p.problems or study is None:
        raise SpecError(p.problems or [SpecProblem("", "the spec is empty")])
    return study


def parse_file(path: str) -> m.Study:
    with open(path, encoding="utf-8") as f:
        return parse_study(f.read())


# --------------------------------------------------------------------------------------------
# The parser: one method per spec node; each returns None after recording its problems.
# --------------------------------------------------------------------------------------------


def _join(path: str, field: str) -> str:
    if not field:
        return path
    if not path:
        return field
    return path + field if field.startswith("[") else f"{path}.{field}"


class _Parser:
    def __init__(self) -> None:
        self.problems: list[SpecProblem] = []

    # -- helpers ---------------------------------------------------------------------------
    def err(self, path: str, message: str) -> None:
        self.problems.append(SpecProblem(path, message))

    def build(self, path: str, cls: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return cls(*args, **kwargs)
        except m.ModelError as exc:
            self.err(_join(path, exc.field), exc.message)
            return None

    def mapping(
        self, path: str, data: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(data, Mapping):
            self.err(path, f"must be a mapping, not {_kind(data)}")
            return None
        ok = True
        for key in data:
            if key not in allowed:
                ok = False
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                tip = f" (did you mean {hint[0]!r}?)" if hint else f" (expected {_list(allowed)})"
                self.err(_join(path, str(key)), f"unknown key{tip}")
        for key in required:
            if key not in data:
                ok = False
                self.err(_join(path, key), "is required")
        return dict(data) if ok else None

    def integer(self, path: str, v: Any, minimum: int | None = None) -> int | None:
        if isinstance(v, bool) or not isinstance(v, int):
            self.err(path, f"must be a whole number, not {_kind(v)}")
            return None
        if minimum is not None and v < minimum:
            self.err(path, f"{v} is below {minimum}")
            return None
        return v

    def opt_int(self, path: str, v: Any) -> tuple[bool, int | None]:
        if v is None:
            return True, None
        out = self.integer(path, v)
        return out is not None, out

    def number(self, path: str, v: Any) -> tuple[bool, float | None]:
        if v is None:
            return True, None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.err(path, f"must be a number, not {_kind(v)}")
            return False, None
        return True, v

    def boolean(self, path: str, v: Any) -> bool | None:
        if not isinstance(v, bool):
            self.err(path, f"must be true or false, not {_kind(v)}")
            return None
        return v

    def ids(self, path: str, v: Any) -> tuple[int, ...] | None:
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, list):
            self.err(path, f"must be a list of concept ids, not {_kind(v)}")
            return None
        out = []
        for i, x in enumerate(v):
            got = self.integer(f"{path}[{i}]", x, minimum=0)
            if got is None:
                return None
            out.append(got)
        return tuple(out)

    def date(self, path: str, v: Any) -> tuple[bool, dt.date | None]:
        if v is None:
            return True, None
        if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            return True, v
        if isinstance(v, str):
            try:
                return True, dt.date.fromisoformat(v)
            except ValueError:
                pass
        self.err(path, f"must be a date YYYY-MM-DD, not {_kind(v)}")
        return False, None

    def enum(self, path: str, v: Any, cls: type[Any]) -> Any:
        try:
            return cls(v)
        except ValueError:
            self.err(path, f"{_short(v)} is not one of {_list([e.value for e in cls])}")
            return None

    # -- study -------------------------------------------------------------------------------
    def study(self, data: Any) -> m.Study | None:
        d = self.mapping("", data, ("study", "cohort", "analyses"), ("study", "cohort", "analyses"))
        if d is None:
            return None
        name = d["study"]
        if not isinstance(name, str):
            self.err("study", f"must be a name, not {_kind(name)}")
        cohort = self.cohort("cohort", d["cohort"])
        analyses = self.analyses("analyses", d["analyses"])
        if cohort is None or analyses is None or self.problems:
            return None
        return self.build("", m.Study, name, cohort, analyses)

    # -- cohort ------------------------------------------------------------------------------
    def cohort(self, path: str, data: Any) -> m.Cohort | None:
        keys = (
            "entry",
            "observation",
            "demographics",
            "criteria",
            "exit",
            "period",
            "qualified_occurrence",
        )
        d = self.mapping(path, data, keys, ("entry",))
        if d is None:
            return None
        before = len(self.problems)
        entry = self.entry(f"{path}.entry", d["entry"])
        obs = (
            self.observation(f"{path}.observation", d["observation"])
            if "observation" in d
            else None
        )
        demo = (
            self.demographics(f"{path}.demographics", d["demographics"])
            if "demographics" in d
            else None
        )
        crit = self.criteria(f"{path}.criteria", d.get("criteria", []))
        exit_ = self.exit(f"{path}.exit", d["exit"]) if "exit" in d else None
        period = self.date_range(f"{path}.period", d["period"]) if "period" in d else None
        qualified = self.enum(
            f"{path}.qualified_occurrence", d.get("qualified_occurrence", "all"), m.Occurrence
        )
        if len(self.problems) > before or entry is None or crit is None or qualified is None:
            return None
        return self.build(path, m.Cohort, entry, obs, demo, crit, exit_, period, qualified)

    def entry(self, path: str, data: Any) -> m.Entry | None:
        """An event block (or ``any_of`` event blocks) with ``occurrence``,
        ``observation_window`` and, on each event block, ``criteria`` (the criteria attached to that event)."""
        blocks: list[tuple[m.Event, dict[str, Any]] | None]
        if isinstance(data, Mapping) and "any_of" in data:
            d = self.mapping(path, data, ("any_of", "occurrence", "observation_window"))
            if d is None:
                return None
            items = d["any_of"]
            if not isinstance(items, list) or not items:
                self.err(f"{path}.any_of", "must be a non-empty list of events")
                return None
            paths = [f"{path}.any_of[{i}]" for i in range(len(items))]
            blocks = [
                self.event_block(p, x, ("criteria",)) for p, x in zip(paths, items, strict=True)
            ]
            rest = d
        else:
            got = self.event_block(path, data, ("occurrence", "observation_window", "criteria"))
            if got is None:
                return None
            paths, blocks, rest = [path], [got], got[1]
        if any(b is None for b in blocks):
            return None
        events = tuple(b[0] for b in blocks if b is not None)
        criteria = tuple(
            self.criteria(f"{p}.criteria", b[1]["criteria"]) if "criteria" in b[1] else ()
            for p, b in zip(paths, blocks, strict=True)
            if b is not None
        )
        occ = self.enum(f"{path}.occurrence", rest.get("occurrence", "first"), m.Occurrence)
        obs = (
            self.observation(f"{path}.observation_window", rest["observation_window"])
            if "observation_window" in rest
            else None
        )
        if (
            occ is None
            or any(c is None for c in criteria)
            or ("observation_window" in rest and obs is None)
        ):
            return None
        crits = tuple(c for c in criteria if c is not None) if any(criteria) else ()
        return self.build(path, m.Entry, events, occ, obs, crits)

    def event(self, path: str, data: Any, extra: tuple[str, ...]) -> m.Event | None:
        got = self.event_block(path, data, extra)
        return None if got is None else got[0]

    def event_block(
        self, path: str, data: Any, extra: tuple[str, ...]
    ) -> tuple[m.Event, dict[str, Any]] | None:
        """An event (one domain key + filters) plus the block's other keys (``extra``)."""
        d = self.mapping(path, data, DOMAIN_KEYS + EVENT_FILTER_KEYS + extra)
        if d is None:
            return None
        domains = [k for k in d if k in DOMAIN_KEYS]
        if len(domains) != 1:
            what = "names no domain" if not domains else f"names {len(domains)} domains"
            self.err(path, f"{what}: give exactly one of {_list(DOMAIN_KEYS)}")
            return None
        domain = m.Domain(domains[0])
        before = len(self.problems)
        concepts = self.concept_set(_join(path, domain.value), d[domain.value])
        dates = self.date_range(f"{path}.dates", d["dates"]) if "dates" in d else None
        value = self.value_range(f"{path}.value", d["value"]) if "value" in d else None
        lists = {k: self.ids(f"{path}.{k}", d[k]) if k in d else () for k in EVENT_FILTER_KEYS[2:]}
        if len(self.problems) > before or any(v is None for v in lists.values()):
            return None
        event = self.build(path, m.Event, domain, concepts, dates, value, **lists)
        if event is None:
            return None
        return event, {k: v for k, v in d.items() if k in extra}

    def concept_set(self, path: str, data: Any) -> m.ConceptSet | None:
        if data is None or data == {}:
            return None  # every event of the domain
        if isinstance(data, list):
            data = {"concepts": data}
        d = self.mapping(path, data, CONCEPT_SET_KEYS)
        if d is None:
            return None
        kw: dict[str, Any] = {}
        for key in CONCEPT_SET_KEYS:
            if key not in d:
                continue
            kw[key] = (
                self.boolean(f"{path}.{key}", d[key])
                if key == "descendants"
                else self.ids(f"{path}.{key}", d[key])
            )
            if kw[key] is None:
                return None
        return self.build(path, m.ConceptSet, **kw)

    def date_range(self, path: str, data: Any) -> m.DateRange | None:
        d = self.mapping(path, data, ("start", "end"))
        if d is None:
            return None
        ok1, start = self.date(f"{path}.start", d.get("start"))
        ok2, end = self.date(f"{path}.end", d.get("end"))
        return self.build(path, m.DateRange, start, end) if ok1 and ok2 else None

    def value_range(self, path: str, data: Any) -> m.ValueRange | None:
        """``{min, max}`` inclusive, ``gt`` / ``lt`` strict (instead of min / max), or
        ``{not_between: [a, b]}`` (outside [a, b])."""
        d = self.mapping(path, data, ("min", "max", "gt", "lt", "not_between"))
        if d is None:
            return None
        if "not_between" in d:
            if len(d) > 1:
                self.err(path, "not_between takes no other bound")
                return None
            pair = d["not_between"]
            if not isinstance(pair, list) or len(pair) != 2:
                self.err(f"{path}.not_between", "must be a list of two numbers [min, max]")
                return None
            ok1, lo = self.number(f"{path}.not_between[0]", pair[0])
            ok2, hi = self.number(f"{path}.not_between[1]", pair[1])
            if not (ok1 and ok2):
                return None
            return self.build(f"{path}.not_between", m.ValueRange, lo, hi, outside=True)
        for inclusive, strict in (("min", "gt"), ("max", "lt")):
            if inclusive in d and strict in d:
                self.err(path, f"give {inclusive} or {strict}, not both")
                return None
        ok1, lo = self.number(f"{path}.{'gt' if 'gt' in d else 'min'}", d.get("gt", d.get("min")))
        ok2, hi = self.number(f"{path}.{'lt' if 'lt' in d else 'max'}", d.get("lt", d.get("max")))
        if not (ok1 and ok2):
            return None
        return self.build(path, m.ValueRange, lo, hi, "gt" in d, "lt" in d)

    def int_range(self, path: str, data: Any) -> m.IntRange | None:
        d = self.mapping(path, data, ("min", "max"))
        if d is None:
            return None
        ok1, lo = self.opt_int(f"{path}.min", d.get("min"))
        ok2, hi = self.opt_int(f"{path}.max", d.get("max"))
        return self.build(path, m.IntRange, lo, hi) if ok1 and ok2 else None

    def window(self, path: str, data: Any) -> m.Window | None:
        d = self.mapping(path, data, ("start", "end", "observed"))
        if d is None:
            return None
        ok1, start = self.opt_int(f"{path}.start", d.get("start"))
        ok2, end = self.opt_int(f"{path}.end", d.get("end"))
        observed = self.boolean(f"{path}.observed", d.get("observed", False))
        if not (ok1 and ok2) or observed is None:
            return None
        return self.build(path, m.Window, start, end, observed)

    def observation(self, path: str, data: Any) -> m.Observation | None:
        d = self.mapping(path, data, ("prior_days", "post_days"))
        if d is None:
            return None
        prior = self.integer(f"{path}.prior_days", d.get("prior_days", 0), minimum=0)
        post = self.integer(f"{path}.post_days", d.get("post_days", 0), minimum=0)
        if prior is None or post is None:
            return None
        return self.build(path, m.Observation, prior, post)

    def demographics(self, path: str, data: Any) -> m.Demographics | None:
        d = self.mapping(path, data, ("age", "sex", "year_of_birth"))
        if d is None:
            return None
        before = len(self.problems)
        age = self.int_range(f"{path}.age", d["age"]) if "age" in d else None
        yob = (
            self.int_range(f"{path}.year_of_birth", d["year_of_birth"])
            if "year_of_birth" in d
            else None
        )
        sex = self.sex(f"{path}.sex", d["sex"]) if "sex" in d else ()
        if len(self.problems) > before or sex is None:
            return None
        return self.build(path, m.Demographics, age, sex, yob)

    def sex(self, path: str, data: Any) -> tuple[int, ...] | None:
        items = data if isinstance(data, list) else [data]
        out = []
        for i, x in enumerate(items):
            if isinstance(x, str) and x.lower() in SEX_NAMES:
                out.append(SEX_NAMES[x.lower()])
            elif isinstance(x, int) and not isinstance(x, bool) and x >= 0:
                out.append(x)
            else:
                self.err(f"{path}[{i}]", f"{_short(x)} is not male, female or a gender concept id")
                return None
        return tuple(out)

    # -- criteria ----------------------------------------------------------------------------
    def criteria(self, path: str, data: Any) -> tuple[m.Criterion, ...] | None:
        if not isinstance(data, list):
            self.err(path, f"must be a list of criteria, not {_kind(data)}")
            return None
        out = [self.criterion(f"{path}[{i}]", x) for i, x in enumerate(data)]
        ok = [c for c in out if c is not None]
        return tuple(ok) if len(ok) == len(out) else None

    def criterion(self, path: str, data: Any) -> m.Criterion | None:
        kinds = ("require", "exclude", "all_of", "any_of")
        d = self.mapping(path, data, (*kinds, "name"))
        if d is None:
            return None
        present = [k for k in kinds if k in d]
        if len(present) != 1:
            self.err(path, f"give exactly one of {_list(kinds)}")
            return None
        kind = present[0]
        name = d.get("name")
        sub = f"{path}.{kind}"
        if kind in ("all_of", "any_of"):
            children = self.criteria(sub, d[kind])
            if children is None:
                return None
            cls = m.AllOf if kind == "all_of" else m.AnyOf
            return self.build(path, cls, children, name)
        extra = ("window", "min_count", "max_count") if kind == "require" else ("window",)
        got = self.event_block(sub, d[kind], extra)
        if got is None:
            return None
        event, rest = got
        window = self.window(f"{sub}.window", rest["window"]) if "window" in rest else m.ALWAYS
        if window is None:
            return None
        if kind == "exclude":
            return self.build(path, m.Exclude, event, window, name)
        lo = self.integer(f"{sub}.min_count", rest.get("min_count", 1), minimum=0)
        ok, hi = self.opt_int(f"{sub}.max_count", rest.get("max_count"))
        if lo is None or not ok:
            return None
        built = self.build(sub, m.Require, event, window, lo, hi)
        return None if built is None else self.build(path, m.Require, event, window, lo, hi, name)

    # -- exit --------------------------------------------------------------------------------
    def exit(self, path: str, data: Any) -> m.Exit | None:
        if data in ("observation_end", "event_end"):
            data = {data: True}
        kinds_all = ("days", "observation_end", "exposure", "event_end")
        d = self.mapping(path, data, (*kinds_all, "collapse_days"))
        if d is None:
            return None
        kinds = [k for k in kinds_all if k in d]
        if len(kinds) != 1:
            self.err(path, f"give exactly one of {_list(kinds_all)}")
            return None
        collapse = self.integer(f"{path}.collapse_days", d.get("collapse_days", 0), minimum=0)
        if collapse is None:
            return None
        kind = kinds[0]
        if kind == "days":
            days = self.integer(f"{path}.days", d["days"], minimum=0)
            return (
                None
                if days is None
                else self.build(path, m.Exit, m.ExitKind.FIXED, days, 0, collapse)
            )
        if kind == "observation_end":
            if d["observation_end"] is not True:
                self.err(f"{path}.observation_end", "must be true")
                return None
            return self.build(path, m.Exit, m.ExitKind.OBSERVATION_END, 0, 0, collapse)
        if kind == "event_end":
            body = {} if d["event_end"] is True else d["event_end"]
            e = self.mapping(f"{path}.event_end", body, ("offset_days",))
            if e is None:
                return None
            off = self.integer(f"{path}.event_end.offset_days", e.get("offset_days", 0), minimum=0)
            if off is None:
                return None
            return self.build(path, m.Exit, m.ExitKind.EVENT_END, off, 0, collapse)
        e = self.mapping(f"{path}.exposure", d["exposure"], ("gap_days", "offset_days"))
        if e is None:
            return None
        gap = self.integer(f"{path}.exposure.gap_days", e.get("gap_days", 0), minimum=0)
        off = self.integer(f"{path}.exposure.offset_days", e.get("offset_days", 0), minimum=0)
        if gap is None or off is None:
            return None
        return self.build(path, m.Exit, m.ExitKind.EXPOSURE, off, gap, collapse)

    # -- analyses ----------------------------------------------------------------------------
    def analyses(self, path: str, data: Any) -> tuple[m.Analysis, ...] | None:
        if not isinstance(data, list) or not data:
            self.err(path, "must be a non-empty list of analyses")
            return None
        out = [self.analysis(f"{path}[{i}]", x) for i, x in enumerate(data)]
        ok = [a for a in out if a is not None]
        return tuple(ok) if len(ok) == len(out) else None

    def analysis(self, path: str, data: Any) -> m.Analysis | None:
        if not isinstance(data, Mapping):
            self.err(path, f"must be a mapping, not {_kind(data)}")
            return None
        present = [k for k in ANALYSIS_KINDS if k in data]
        if len(present) != 1:
            self.err(path, f"give exactly one of {_list(ANALYSIS_KINDS)}")
            return None
        kind = present[0]
        allowed = {
            "count": ("by",),
            "outcome": ("by", "rate"),
            "distribution": ("by",),
            "attrition": (),
            "survival": ("by",),
        }[kind]
        d = self.mapping(path, data, ("name", kind, *allowed), ("name",))
        if d is None:
            return None
        name = d["name"]
        if not isinstance(name, str):
            self.err(f"{path}.name", f"must be a name, not {_kind(name)}")
            return None
        by = self.by(f"{path}.by", d.get("by", []))
        if by is None:
            return None
        body = d[kind]
        sub = f"{path}.{kind}"
        if kind == "count":
            unit = self.enum(sub, body, m.CountUnit)
            return None if unit is None else self.build(path, m.Count, name, unit, by)
        if kind == "attrition":
            if body is not True:
                self.err(sub, "must be true")
                return None
            return self.build(path, m.Attrition, name)
        if kind in ("outcome", "survival"):
            got = self.event_block(sub, body, ("window",))
            if got is None:
                return None
            event, rest = got
            if "window" not in rest:
                self.err(f"{sub}.window", "is required")
                return None
            window = self.window(f"{sub}.window", rest["window"])
            if window is None:
                return None
            if kind == "survival":
                return self.build(path, m.Survival, name, event, window, by)
            rate = self.boolean(f"{path}.rate", d.get("rate", False))
            if rate is None:
                return None
            return self.build(path, m.Outcome, name, event, window, by, rate)
        return self.distribution(path, name, body, by)

    def distribution(
        self, path: str, name: str, body: Any, by: tuple[m.Dimension, ...]
    ) -> m.Distribution | None:
        sub = f"{path}.distribution"
        if body == "age":
            return self.build(path, m.Distribution, name, m.DistributionOf.AGE, by=by)
        d = self.mapping(sub, body, ("value", "days_to_outcome", "age"))
        if d is None:
            return None
        if len(d) != 1:
            self.err(sub, "give exactly one of age, value, days_to_outcome")
            return None
        ((key, inner),) = d.items()
        if key == "age":
            if inner is not True:
                self.err(f"{sub}.age", "must be true")
                return None
            return self.build(path, m.Distribution, name, m.DistributionOf.AGE, by=by)
        extra = ("window", "occurrence") if key == "value" else ("window",)
        got = self.event_block(f"{sub}.{key}", inner, extra)
        if got is None:
            return None
        event, rest = got
        window: m.Window | None = m.ALWAYS
        if "window" in rest:
            window = self.window(f"{sub}.{key}.window", rest["window"])
            if window is None:
                return None
        occ = self.enum(f"{sub}.{key}.occurrence", rest.get("occurrence", "all"), m.Occurrence)
        if occ is None:
            return None
        return self.build(path, m.Distribution, name, m.DistributionOf(key), event, window, occ, by)

    def by(self, path: str, data: Any) -> tuple[m.Dimension, ...] | None:
        if not isinstance(data, list):
            data = [data]
        out = []
        for i, x in enumerate(data):
            p = f"{path}[{i}]"
            if isinstance(x, str) and x in SIMPLE_DIMENSIONS:
                out.append(SIMPLE_DIMENSIONS[x])
                continue
            if isinstance(x, Mapping) and len(x) == 1 and "age_band" in x:
                width = self.integer(f"{p}.age_band", x["age_band"], minimum=1)
                if width is None:
                    return None
                out.append(m.AgeBand(width))
                continue
            if isinstance(x, Mapping) and len(x) == 1 and "column" in x:
                col = x["column"]
                source, _, column = str(col).partition(".")
                if source not in ("person", "entry") or not column:
                    self.err(f"{p}.column", f"{_short(col)} is not person.COLUMN or entry.COLUMN")
                    return None
                d = self.build(p, m.Dimension, m.DimensionKind.CONCEPT_COLUMN, None,
                               m.ColumnSource(source), column)  # fmt: skip
                if d is None:
                    return None
                out.append(d)
                continue
            choices = [*SIMPLE_DIMENSIONS, "{age_band: N}", "{column: person.X_concept_id}"]
            self.err(p, f"{_short(x)} is not one of {_list(choices)}")
            return None
        return tuple(out)


# --------------------------------------------------------------------------------------------
# Dumping: model -> canonical spec dict
# --------------------------------------------------------------------------------------------


def dump_study(study: m.Study) -> dict[str, Any]:
    """The canonical spec of a study (defaults omitted); parse_study(dump_study(s)) == s."""
    return {
        "study": study.name,
        "cohort": _dump_cohort(study.cohort),
        "analyses": [_dump_analysis(a) for a in study.analyses],
    }


def dump_yaml(study: m.Study) -> str:
    return yaml.safe_dump(dump_study(study), sort_keys=False, default_flow_style=None, width=100)


def dump_json(study: m.Study) -> str:
    return json.dumps(dump_study(study), default=str, sort_keys=False)


def _dump_cohort(c: m.Cohort) -> dict[str, Any]:
    out: dict[str, Any] = {"entry": _dump_entry(c.entry)}
    if c.observation is not None:
        out["observation"] = {"prior_days": c.observation.prior_days,
                              "post_days": c.observation.post_days}  # fmt: skip
    if c.demographics is not None:
        d: dict[str, Any] = {}
        if c.demographics.age is not None:
            d["age"] = _dump_range(c.demographics.age)
        if c.demographics.sex:
            d["sex"] = list(c.demographics.sex)
        if c.demographics.year_of_birth is not None:
            d["year_of_birth"] = _dump_range(c.demographics.year_of_birth)
        out["demographics"] = d
    if c.period is not None:
        out["period"] = _dump_dates(c.period)
    if c.criteria:
        out["criteria"] = [_dump_criterion(x) for x in c.criteria]
    if c.exit is not None:
        out["exit"] = _dump_exit(c.exit)
    if c.qualified_occurrence is not m.Occurrence.ALL:
        out["qualified_occurrence"] = c.qualified_occurrence.value
    return out


def _dump_entry(e: m.Entry) -> dict[str, Any]:
    blocks = [_dump_event(x) for x in e.events]
    for block, crits in zip(blocks, e.criteria, strict=False):  # criteria may be ()
        if crits:
            block["criteria"] = [_dump_criterion(x) for x in crits]
    out: dict[str, Any] = blocks[0] if len(blocks) == 1 else {"any_of": blocks}
    out["occurrence"] = e.occurrence.value
    if e.observation_window is not None:
        ow = e.observation_window
        out["observation_window"] = {"prior_days": ow.prior_days, "post_days": ow.post_days}
    return out


def _dump_event(e: m.Event) -> dict[str, Any]:
    out: dict[str, Any] = {e.domain.value: _dump_concepts(e.concepts)}
    if e.dates is not None:
        out["dates"] = _dump_dates(e.dates)
    if e.value is not None:
        out["value"] = _dump_range(e.value)
    for key in ("unit", "value_concepts", "visit_type"):
        if getattr(e, key):
            out[key] = list(getattr(e, key))
    return out


def _dump_concepts(c: m.ConceptSet | None) -> dict[str, Any]:
    if c is None:
        return {}
    out: dict[str, Any] = {}
    for key in CONCEPT_SET_KEYS:
        v = getattr(c, key)
        if key == "descendants":
            if v:
                out[key] = True
        elif v:
            out[key] = list(v)
    return out


def _dump_dates(r: m.DateRange) -> dict[str, Any]:
    return {k: getattr(r, k).isoformat() for k in ("start", "end") if getattr(r, k) is not None}


def _dump_range(r: m.ValueRange | m.IntRange) -> dict[str, Any]:
    if isinstance(r, m.ValueRange):
        if r.outside:
            return {"not_between": [r.min, r.max]}
        out: dict[str, Any] = {}
        if r.min is not None:
            out["gt" if r.min_exclusive else "min"] = r.min
        if r.max is not None:
            out["lt" if r.max_exclusive else "max"] = r.max
        return out
    return {k: getattr(r, k) for k in ("min", "max") if getattr(r, k) is not None}


def _dump_window(w: m.Window) -> dict[str, Any]:
    out: dict[str, Any] = {"start": w.start, "end": w.end}
    if w.observed:
        out["observed"] = True
    return out


def _dump_criterion(c: m.Criterion) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.name is not None:
        out["name"] = c.name
    if isinstance(c, (m.AllOf, m.AnyOf)):
        key = "all_of" if isinstance(c, m.AllOf) else "any_of"
        out[key] = [_dump_criterion(x) for x in c.criteria]
        return out
    block = _dump_event(c.event)
    if c.window != m.ALWAYS:
        block["window"] = _dump_window(c.window)
    if isinstance(c, m.Require):
        if c.min_count != 1:
            block["min_count"] = c.min_count
        if c.max_count is not None:
            block["max_count"] = c.max_count
        out["require"] = block
    else:
        out["exclude"] = block
    return out


def _dump_exit(e: m.Exit) -> dict[str, Any]:
    out: dict[str, Any]
    if e.kind is m.ExitKind.FIXED:
        out = {"days": e.days}
    elif e.kind is m.ExitKind.OBSERVATION_END:
        out = {"observation_end": True}
    elif e.kind is m.ExitKind.EVENT_END:
        out = {"event_end": {"offset_days": e.days}}
    else:
        out = {"exposure": {"gap_days": e.gap_days, "offset_days": e.days}}
    if e.collapse_days:
        out["collapse_days"] = e.collapse_days
    return out


def _dump_dimension(d: m.Dimension) -> Any:
    if d.kind is m.DimensionKind.AGE_BAND:
        return {"age_band": d.width}
    if d.kind is m.DimensionKind.CONCEPT_COLUMN:
        assert d.source is not None  # model.Dimension: a column breakdown has a source
        return {"column": f"{d.source.value}.{d.column}"}
    return d.kind.value


def _dump_analysis(a: m.Analysis) -> dict[str, Any]:
    out: dict[str, Any] = {"name": a.name}
    if isinstance(a, m.Count):
        out["count"] = a.unit.value
    elif isinstance(a, m.Attrition):
        out["attrition"] = True
    elif isinstance(a, (m.Outcome, m.Survival)):
        block = _dump_event(a.event)
        block["window"] = _dump_window(a.window)
        out["outcome" if isinstance(a, m.Outcome) else "survival"] = block
        if isinstance(a, m.Outcome) and a.rate:
            out["rate"] = True
    elif isinstance(a, m.Distribution):
        if a.of is m.DistributionOf.AGE:
            out["distribution"] = "age"
        else:
            assert a.event is not None  # model.Distribution: only `age` has no event
            block = _dump_event(a.event)
            if a.window != m.ALWAYS:
                block["window"] = _dump_window(a.window)
            if a.occurrence is not m.Occurrence.ALL:
                block["occurrence"] = a.occurrence.value
            out["distribution"] = {a.of.value: block}
    by = getattr(a, "by", ())
    if by:
        out["by"] = [_dump_dimension(d) for d in by]
    return out


# --------------------------------------------------------------------------------------------
# Concepts absent from the store
# --------------------------------------------------------------------------------------------


def concept_ids(study: m.Study) -> tuple[int, ...]:
    """Every concept id a study names (concept sets, units, visit types, sexes), sorted."""
    ids: set[int] = set()
    for e in m.walk_events(study):
        if e.concepts is not None:
            for key in CONCEPT_SET_KEYS:
                if key != "descendants":
                    ids.update(getattr(e.concepts, key))
        ids.update(e.unit, e.value_concepts, e.visit_type)
    if study.cohort.demographics is not None:
        ids.update(study.cohort.demographics.sex)
    return tuple(sorted(ids))


def check_concepts(study: m.Study, store: Any) -> list[str]:
    """Warnings for concept ids the store's ``concept`` table does not hold. The ids are
    validated integers written as typed integer literals (the same SQL on every engine, whose
    parameter styles differ). An empty concept table gives one warning."""
    ids = concept_ids(study)
    if not ids:
        return []
    table = store.qualified("concept")
    total = store.query(f"SELECT count(*) FROM {table}").rows[0][0]
    if not total:
        return ["the store's concept table is empty: concept ids cannot be checked"]
    literals = ", ".join(str(int(i)) for i in ids)
    sql = f"SELECT concept_id FROM {table} WHERE concept_id IN ({literals})"
    found = {int(r[0]) for r in store.query(sql).rows}
    return [f"concept {i} is not in the store's vocabulary" for i in ids if i not in found]


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return f"the text {_short(v)}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, Mapping):
        return "a mapping"
    return type(v).__name__


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _list(items: Any) -> str:
    return ", ".join(str(i) for i in items)
