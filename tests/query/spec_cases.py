"""Spec tests of the study language, in the ehrQL style: small CDM data, a spec, the answer.

Every engine runs every case (the reference engine in test_reference_spec.py; the SQL engines
in the compiler's tests) and docs/study-language.md is generated from them
(tools/gen_study_docs.py), so the documentation is the test suite.

Structure, kept simple so any engine's test can use it:

    from spec_cases import CASES, assert_result_matches
    for case in CASES:
        case.id, case.section, case.title, case.doc   # text for the docs
        case.data      # {table: [row dict]}: only the columns the case is about (for the docs)
        case.tables()  # the same rows with every required CDM column filled (to load a store)
        case.spec      # the spec dict
        case.study()   # the parsed model
        case.expected  # {analysis name: [row tuple in result_columns order]}
        assert_result_matches(engine.execute(case.study()), case.expected)

Rows compare without regard to order; numbers compare with a relative tolerance of 1e-9.
Dates in ``data`` are ISO strings or dates; ``tables()`` turns every ``*_date`` into a date.
Ids missing from a row are numbered 1, 2, ... per table in order of appearance.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from passerelle.cdm.schema import TABLES_BY_NAME
from passerelle.query.parse import parse_study

F, M = 8532, 8507
EHR = 32817  # type concept "EHR"


@dataclass
class SpecCase:
    id: str
    section: str
    title: str
    doc: str
    data: dict[str, list[dict[str, Any]]]
    spec: dict[str, Any]
    expected: dict[str, list[tuple[Any, ...]]]
    _filled: dict[str, list[dict[str, Any]]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for table, rows in self.data.items():
            t = TABLES_BY_NAME[table]
            if len(t.primary_key) == 1 and table != "death":
                key = t.primary_key[0]
                for i, row in enumerate(rows, start=1):
                    row.setdefault(key, i)
                    rows[i - 1] = {key: row.pop(key), **row}

    def study(self):  # type: ignore[no-untyped-def]
        return parse_study(self.spec)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Rows with every column of the CDM table (required ones filled with defaults)."""
        if self._filled is None:
            self._filled = {t: [_fill(t, r) for r in rows] for t, rows in self.data.items()}
        return self._filled


def _fill(table: str, row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in TABLES_BY_NAME[table].columns:
        v = row.get(col.name)
        if v is None and col.required:
            if col.name.endswith("type_concept_id"):
                v = EHR
            elif col.name.endswith("_concept_id"):
                v = 0
            elif col.name.endswith("levels_of_separation"):
                v = 1
            elif col.name == "drug_exposure_end_date":
                v = row.get("drug_exposure_start_date")
            elif col.name == "visit_end_date":
                v = row.get("visit_start_date")
        if isinstance(v, str) and col.name.endswith("_date"):
            v = dt.date.fromisoformat(v)
        out[col.name] = v
    unknown = set(row) - set(out)
    if unknown:
        raise KeyError(f"{table} has no column {sorted(unknown)}")
    return out


# --------------------------------------------------------------------------------------------
# Comparing results
# --------------------------------------------------------------------------------------------


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        (0, round(float(v), 6)) if _num(v) else (1, "") if v is None else (2, str(v)) for v in row
    )


def rows_match(actual: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> bool:
    if len(actual) != len(expected):
        return False
    for a, e in zip(sorted(actual, key=_sort_key), sorted(expected, key=_sort_key), strict=True):
        if len(a) != len(e):
            return False
        for x, y in zip(a, e, strict=True):
            if _num(x) and _num(y):
                if not math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


def assert_result_matches(result: Any, expected: dict[str, list[tuple[Any, ...]]]) -> None:
    """`result` (a StudyResult) has exactly the expected rows in every named analysis."""
    for name, rows in expected.items():
        table = result.table(name)
        actual = [tuple(r) for r in table.rows]
        assert rows_match(actual, rows), (
            f"analysis {name} {table.column_names}:\n  got      {sorted(actual, key=_sort_key)}"
            f"\n  expected {sorted(rows, key=_sort_key)}"
        )


# --------------------------------------------------------------------------------------------
# Row helpers (only the columns a case is about)
# --------------------------------------------------------------------------------------------


def person(pid: int, sex: int = F, yob: int = 1980, **kw: Any) -> dict[str, Any]:
    return {"person_id": pid, "gender_concept_id": sex, "year_of_birth": yob, **kw}


def period(pid: int, start: str, end: str) -> dict[str, Any]:
    return {
        "person_id": pid,
        "observation_period_start_date": start,
        "observation_period_end_date": end,
    }


def cond(pid: int, concept: int, start: str, end: str | None = None, **kw: Any) -> dict[str, Any]:
    row = {"person_id": pid, "condition_concept_id": concept, "condition_start_date": start}
    if end is not None:
        row["condition_end_date"] = end
    return {**row, **kw}


def drug(pid: int, concept: int, start: str, end: str | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "person_id": pid,
        "drug_concept_id": concept,
        "drug_exposure_start_date": start,
        "drug_exposure_end_date": end or start,
        **kw,
    }


def meas(pid: int, concept: int, day: str, value: float | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "person_id": pid,
        "measurement_concept_id": concept,
        "measurement_date": day,
        "value_as_number": value,
        **kw,
    }


def proc(pid: int, concept: int, day: str) -> dict[str, Any]:
    return {"person_id": pid, "procedure_concept_id": concept, "procedure_date": day}


def visit(vid: int, pid: int, concept: int, start: str, site: int | None = None) -> dict[str, Any]:
    return {
        "visit_occurrence_id": vid,
        "person_id": pid,
        "visit_concept_id": concept,
        "visit_start_date": start,
        "visit_end_date": start,
        "care_site_id": site,
    }


def death(pid: int, day: str) -> dict[str, Any]:
    return {"person_id": pid, "death_date": day}


def ancestors(*pairs: tuple[int, int]) -> list[dict[str, Any]]:
    return [{"ancestor_concept_id": a, "descendant_concept_id": d} for a, d in pairs]


def spec(cohort: dict[str, Any], *analyses: dict[str, Any], name: str = "case") -> dict[str, Any]:
    return {"study": name, "cohort": cohort, "analyses": list(analyses)}


def cohort100(**kw: Any) -> dict[str, Any]:
    """Entry on the first condition 100."""
    return {"entry": {"condition": {"concepts": [100]}, "occurrence": "first"}, **kw}


PERSONS = {"name": "persons", "count": "persons"}
ENTRIES = {"name": "entries", "count": "entries"}
STATS_NAMES = ("n", "mean", "sd", "min", "p10", "p25", "median", "p75", "p90", "max")

CASES: list[SpecCase] = []


def case(**kw: Any) -> None:
    CASES.append(SpecCase(**kw))


# --------------------------------------------------------------------------------------------
# Entry events
# --------------------------------------------------------------------------------------------

_OCC_DATA = {
    "person": [person(1), person(2, M)],
    "condition_occurrence": [
        cond(1, 100, "2020-03-01"),
        cond(1, 100, "2020-01-15"),
        cond(1, 100, "2021-06-01"),
        cond(2, 100, "2019-05-05"),
        cond(2, 200, "2018-01-01"),
    ],
}
_BY_YEAR = {"name": "by_year", "count": "entries", "by": ["index_year"]}

for occ, by_year, n_entries, text in (
    (
        "first",
        [(2019, 1), (2020, 1)],
        2,
        "`occurrence: first` keeps each person's earliest matching event: its start date is the "
        "index date.",
    ),
    (
        "last",
        [(2019, 1), (2021, 1)],
        2,
        "`occurrence: last` keeps each person's latest matching event.",
    ),
    (
        "all",
        [(2019, 1), (2020, 2), (2021, 1)],
        4,
        "`occurrence: all` keeps every matching event: a person can enter several times "
        "(`count: entries` counts entries, `count: persons` distinct persons).",
    ),
):
    case(
        id=f"entry-occurrence-{occ}",
        section="Entry events",
        title=f"occurrence: {occ}",
        doc=text,
        data=_OCC_DATA
        if occ == "first"
        else {k: [dict(r) for r in v] for k, v in _OCC_DATA.items()},
        spec=spec(
            {"entry": {"condition": {"concepts": [100]}, "occurrence": occ}},
            PERSONS,
            ENTRIES,
            _BY_YEAR,
        ),
        expected={"persons": [(2,)], "entries": [(n_entries,)], "by_year": by_year},
    )

_VOCAB = ancestors((100, 101), (100, 102), (101, 103), (100, 103))
_CONCEPT_DATA = {
    "person": [person(i) for i in (1, 2, 3, 4, 5)],
    "concept_ancestor": _VOCAB,
    "condition_occurrence": [
        cond(1, 101, "2020-01-01"),
        cond(2, 103, "2020-02-01"),
        cond(3, 104, "2020-03-01"),
        cond(4, 100, "2020-04-01"),
        cond(5, 102, "2020-05-01"),
    ],
}
_BY_CONCEPT = {"name": "by_concept", "count": "persons", "by": ["entry_concept"]}


def _copy(data: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {k: [dict(r) for r in v] for k, v in data.items()}


case(
    id="concepts-descendants",
    section="Concept sets",
    title="descendants through concept_ancestor",
    doc="`descendants: true` adds every `descendant_concept_id` of the listed concepts in "
    "`concept_ancestor`. The concept itself is always included, whether or not "
    "`concept_ancestor` lists it as its own descendant.",
    data=_CONCEPT_DATA,
    spec=spec(
        {"entry": {"condition": {"concepts": [100], "descendants": True}}}, PERSONS, _BY_CONCEPT
    ),
    expected={"persons": [(4,)], "by_concept": [(100, 1), (101, 1), (102, 1), (103, 1)]},
)
case(
    id="concepts-exact",
    section="Concept sets",
    title="without descendants",
    doc="Without `descendants` only the listed concepts match.",
    data=_copy(_CONCEPT_DATA),
    spec=spec({"entry": {"condition": {"concepts": [100, 103]}}}, PERSONS, _BY_CONCEPT),
    expected={"persons": [(2,)], "by_concept": [(100, 1), (103, 1)]},
)
case(
    id="concepts-exclude",
    section="Concept sets",
    title="excluded concepts",
    doc="`exclude` removes concepts, with their descendants when `descendants` is true "
    "(here 101 and its descendant 103). `exclude_exact` removes a concept alone, and `exact` "
    "adds one without its descendants (ATLAS concept sets that mix both are written this way).",
    data=_copy(_CONCEPT_DATA),
    spec=spec(
        {"entry": {"condition": {"concepts": [100], "descendants": True, "exclude": [101]}}},
        PERSONS,
        _BY_CONCEPT,
    ),
    expected={"persons": [(2,)], "by_concept": [(100, 1), (102, 1)]},
)
case(
    id="concepts-exclude-exact",
    section="Concept sets",
    title="exact inclusions and exclusions",
    doc="`exclude_exact: [101]` removes 101 but keeps its descendant 103; `exact: [104]` adds "
    "104 alone.",
    data=_copy(_CONCEPT_DATA),
    spec=spec(
        {
            "entry": {
                "condition": {
                    "concepts": [100],
                    "descendants": True,
                    "exclude_exact": [101],
                    "exact": [104],
                }
            }
        },
        PERSONS,
        _BY_CONCEPT,
    ),
    expected={"persons": [(4,)], "by_concept": [(100, 1), (102, 1), (103, 1), (104, 1)]},
)
case(
    id="concepts-source",
    section="Concept sets",
    title="source concepts",
    doc="`source_concepts` also matches events whose source concept column "
    "(`condition_source_concept_id` here) is listed, whatever their standard concept.",
    data={
        "person": [person(1), person(2), person(3)],
        "condition_occurrence": [
            cond(1, 0, "2020-01-01", condition_source_concept_id=45000),
            cond(2, 100, "2020-01-01", condition_source_concept_id=0),
            cond(3, 0, "2020-01-01", condition_source_concept_id=45001),
        ],
    },
    spec=spec({"entry": {"condition": {"concepts": [100], "source_concepts": [45000]}}}, PERSONS),
    expected={"persons": [(2,)]},
)

_DATES_DATA = {
    "person": [person(1), person(2)],
    "condition_occurrence": [
        cond(1, 100, "2014-06-01"),
        cond(1, 100, "2016-03-01"),
        cond(2, 100, "2017-01-01"),
    ],
}
case(
    id="entry-dates",
    section="Entry events",
    title="a date range on the entry event",
    doc='`dates` filters events *before* `occurrence` picks: this is "the first diagnosis '
    'from 2015 on" (person 1 enters on 2016-03-01).',
    data=_DATES_DATA,
    spec=spec(
        {
            "entry": {
                "condition": {"concepts": [100]},
                "dates": {"start": "2015-01-01"},
                "occurrence": "first",
            }
        },
        _BY_YEAR,
    ),
    expected={"by_year": [(2016, 1), (2017, 1)]},
)
case(
    id="cohort-period",
    section="Entry events",
    title="a study period",
    doc='`cohort.period` applies *after* `occurrence`: "the first diagnosis ever, kept if it '
    "falls from 2015 on\" (incident cases). Person 1's first diagnosis is in 2014: excluded.",
    data=_copy(_DATES_DATA),
    spec=spec(cohort100(period={"start": "2015-01-01"}), _BY_YEAR),
    expected={"by_year": [(2017, 1)]},
)
case(
    id="entry-measurement-value",
    section="Entry events",
    title="measurement value and unit",
    doc="`value` keeps events whose `value_as_number` lies in [min, max] (inclusive; a NULL "
    "value never matches) and `unit` those whose `unit_concept_id` is listed.",
    data={
        "person": [person(i) for i in (1, 2, 3, 4)],
        "measurement": [
            meas(1, 3000, "2020-01-01", 5.0, unit_concept_id=8840),
            meas(1, 3000, "2020-02-01", 12.0, unit_concept_id=8840),
            meas(2, 3000, "2020-01-01", 12.0, unit_concept_id=8713),
            meas(3, 3000, "2020-01-01", None, unit_concept_id=8840),
            meas(4, 3000, "2020-01-05", 7.5, unit_concept_id=8840),
        ],
    },
    spec=spec(
        {
            "entry": {
                "measurement": {"concepts": [3000]},
                "value": {"min": 6, "max": 12},
                "unit": [8840],
            }
        },
        PERSONS,
        {"name": "by_month", "count": "persons", "by": ["index_month"]},
    ),
    expected={"persons": [(2,)], "by_month": [(1, 1), (2, 1)]},
)
# Persons whose gender_concept_id is their person id, so `by: [sex]` names who entered.
_WHO = {"name": "who", "count": "persons", "by": ["sex"]}
_VALUES = {
    "person": [person(i, sex=i) for i in (1, 2, 3, 4, 5)],
    "measurement": [
        meas(1, 3000, "2020-01-01", 5.0),
        meas(2, 3000, "2020-01-01", 6.0),
        meas(3, 3000, "2020-01-01", 12.0),
        meas(4, 3000, "2020-01-01", 12.5),
        meas(5, 3000, "2020-01-01", None),
    ],
}
for vid, value, who, text in (
    (
        "strict",
        {"gt": 5, "lt": 12.5},
        [(2, 1), (3, 1)],
        "`gt` / `lt` are strict bounds (value > gt, value < lt) in place of the inclusive `min` / "
        "`max`; a strict and an inclusive bound mix (`{min: 5, lt: 12.5}`). Here values 5.0, "
        "6.0, 12.0, 12.5 and NULL: only 6.0 and 12.0 lie strictly between 5 and 12.5.",
    ),
    (
        "not-between",
        {"not_between": [6, 12]},
        [(1, 1), (4, 1)],
        "`not_between: [a, b]` keeps values outside [a, b] (value < a or value > b: ATLAS's "
        '"not between"); a NULL value is never outside a range either.',
    ),
):
    case(
        id=f"entry-value-{vid}",
        section="Entry events",
        title=f"measurement value: {vid.replace('-', ' ')}",
        doc=text,
        data=_copy(_VALUES),
        spec=spec({"entry": {"measurement": [3000], "value": value}}, _WHO),
        expected={"who": who},
    )
case(
    id="entry-visit-type",
    section="Entry events",
    title="visit type",
    doc="`visit_type` keeps events whose visit (`visit_occurrence_id`) has one of these "
    "`visit_concept_id`s; an event without a visit never matches.",
    data={
        "person": [person(1), person(2), person(3)],
        "visit_occurrence": [visit(1, 1, 9201, "2020-01-01"), visit(2, 2, 9202, "2020-01-01")],
        "condition_occurrence": [
            cond(1, 100, "2020-01-01", visit_occurrence_id=1),
            cond(2, 100, "2020-01-01", visit_occurrence_id=2),
            cond(3, 100, "2020-01-01"),
        ],
    },
    spec=spec({"entry": {"condition": {"concepts": [100]}, "visit_type": [9201]}}, PERSONS),
    expected={"persons": [(1,)]},
)
case(
    id="entry-any-of",
    section="Entry events",
    title="several entry events",
    doc="`any_of` enters on any of several events, across domains; `occurrence` picks among "
    "all of them (person 1 enters on the drug, which comes first).",
    data={
        "person": [person(1), person(2), person(3)],
        "condition_occurrence": [cond(1, 100, "2020-05-01"), cond(3, 100, "2019-01-01")],
        "drug_exposure": [drug(1, 500, "2020-03-01", "2020-03-10"), drug(2, 500, "2021-01-01")],
    },
    spec=spec(
        {
            "entry": {
                "any_of": [{"condition": {"concepts": [100]}}, {"drug": [500]}],
                "occurrence": "first",
            }
        },
        ENTRIES,
        _BY_CONCEPT,
        _BY_YEAR,
    ),
    expected={
        "entries": [(3,)],
        "by_concept": [(100, 1), (500, 2)],
        "by_year": [(2019, 1), (2020, 1), (2021, 1)],
    },
)
case(
    id="entry-tie-across-domains",
    section="Entry events",
    title="ties between domains",
    doc="When events of several domains start on the same day, `first` takes the one whose "
    "domain name sorts first (then the smaller event id, then the smaller concept id), "
    "whatever the order of `any_of`; `last` takes the largest.",
    data={
        "person": [person(1)],
        "condition_occurrence": [cond(1, 100, "2020-01-01")],
        "drug_exposure": [drug(1, 500, "2020-01-01")],
    },
    spec=spec(
        {"entry": {"any_of": [{"drug": [500]}, {"condition": [100]}], "occurrence": "first"}},
        _BY_CONCEPT,
    ),
    expected={"by_concept": [(100, 1)]},
)
case(
    id="entry-tie-last",
    section="Entry events",
    title="ties on one day",
    doc="Two matching events on the same day: `last` keeps the one with the larger event id.",
    data={
        "person": [person(1)],
        "concept_ancestor": ancestors((100, 101)),
        "condition_occurrence": [cond(1, 100, "2020-01-01"), cond(1, 101, "2020-01-01")],
    },
    spec=spec(
        {"entry": {"condition": {"concepts": [100], "descendants": True}, "occurrence": "last"}},
        _BY_CONCEPT,
    ),
    expected={"by_concept": [(101, 1)]},
)
case(
    id="entry-value-concepts",
    section="Entry events",
    title="measurement value concepts",
    doc="`value_concepts` keeps events whose `value_as_concept_id` is listed (a NULL never "
    "matches): positive tests only.",
    data={
        "person": [person(1), person(2), person(3)],
        "measurement": [
            meas(1, 3000, "2020-01-01", value_as_concept_id=9191),
            meas(2, 3000, "2020-01-01", value_as_concept_id=9189),
            meas(3, 3000, "2020-01-01"),
        ],
    },
    spec=spec({"entry": {"measurement": [3000], "value_concepts": [9191, 4126681]}}, PERSONS),
    expected={"persons": [(1,)]},
)
case(
    id="entry-row-once",
    section="Entry events",
    title="a row matching two entry events is one entry",
    doc="Rows are matched, not events counted: condition 100 matches both entry events but "
    "is one entry.",
    data={
        "person": [person(1)],
        "concept_ancestor": ancestors((100, 101)),
        "condition_occurrence": [cond(1, 100, "2020-01-01"), cond(1, 101, "2020-02-01")],
    },
    spec=spec(
        {
            "entry": {
                "any_of": [
                    {"condition": [100]},
                    {"condition": {"concepts": [100], "descendants": True}},
                ],
                "occurrence": "all",
            }
        },
        ENTRIES,
    ),
    expected={"entries": [(2,)]},
)
case(
    id="entry-death-any",
    section="Entry events",
    title="any event of a domain; persons missing from person",
    doc="An empty concept set (`death: {}`) matches every event of the domain. Events of "
    "persons absent from `person` (person 9) are ignored everywhere.",
    data={
        "person": [person(1), person(2)],
        "death": [death(1, "2020-01-01"), death(2, "2021-01-01"), death(9, "2021-01-01")],
    },
    spec=spec({"entry": {"death": {}}}, PERSONS),
    expected={"persons": [(2,)]},
)

# --------------------------------------------------------------------------------------------
# Observation and demographics
# --------------------------------------------------------------------------------------------

case(
    id="observation-prior-post",
    section="Observation",
    title="prior and post observation",
    doc="`observation` keeps entries whose index date lies in an observation period with at "
    "least `prior_days` before it and `post_days` after it (both counted in days from the "
    "index, boundaries included). Person 2 lacks one day; person 3 has no observation period; "
    "person 4 leaves too early; person 5's index lies in a short second period; person 6 has "
    "exactly 30 days after.",
    data={
        "person": [person(i) for i in range(1, 7)],
        "condition_occurrence": [cond(i, 100, "2020-01-01") for i in range(1, 7)],
        "observation_period": [
            period(1, "2019-01-01", "2020-12-31"),
            period(2, "2019-01-02", "2020-12-31"),
            period(4, "2018-01-01", "2020-01-20"),
            period(5, "2015-01-01", "2016-01-01"),
            period(5, "2019-06-01", "2021-01-01"),
            period(6, "2018-01-01", "2020-01-31"),
        ],
    },
    spec=spec(
        cohort100(observation={"prior_days": 365, "post_days": 30}),
        PERSONS,
        {"name": "flow", "attrition": True},
    ),
    expected={"persons": [(2,)], "flow": [(0, "entry", 6), (1, "observation", 2)]},
)
case(
    id="observation-overlapping-periods",
    section="Observation",
    title="overlapping observation periods",
    doc="Observation periods should not overlap, but if they do, the period containing the "
    "index with the earliest start (then the latest end) is the one used, both for "
    "`prior_days` / `post_days` and for an `observation_end` exit (here 2020-06-30: 181 days "
    "at risk from day 1).",
    data={
        "person": [person(1)],
        "condition_occurrence": [cond(1, 100, "2020-01-01")],
        "observation_period": [
            period(1, "2019-01-01", "2020-06-30"),
            period(1, "2019-06-01", "2021-12-31"),
        ],
    },
    spec=spec(
        cohort100(observation={"prior_days": 365}, exit="observation_end"),
        {
            "name": "tar",
            "outcome": {"death": {}, "window": {"start": 1, "end": None}},
            "rate": True,
        },
    ),
    expected={"tar": [(1, 0, 0.0, 181, 0, 0.0)]},
)
_ENTRY_OBS = {
    "person": [person(1), person(2)],
    "condition_occurrence": [
        cond(1, 100, "2020-01-10"),
        cond(1, 100, "2020-06-01"),
        cond(2, 100, "2020-03-01"),
    ],
    "observation_period": [period(1, "2020-01-01", "2020-12-31")],
}
_BY_MONTH = {"name": "by_month", "count": "persons", "by": ["index_month"]}
for where, cohort_spec, by_month, flow, text in (
    (
        "entry",
        {
            "entry": {
                "condition": [100],
                "occurrence": "first",
                "observation_window": {"prior_days": 30},
            }
        },
        [(6, 1)],
        [(0, "entry", 1)],
        "`observation_window` inside `entry` applies *before* `occurrence`: only events with the "
        "observation are candidates, so `occurrence: first` picks the first event that has 30 "
        "days of prior observation (ATLAS's primary-event observation window). Person 1's first "
        "event (2020-01-10) has 9 days; the second (2020-06-01) has 152, and becomes the index. "
        "Person 2 has no observation period.",
    ),
    (
        "cohort",
        {"entry": {"condition": [100], "occurrence": "first"}, "observation": {"prior_days": 30}},
        [],
        [(0, "entry", 2), (1, "observation", 0)],
        "The same data with the cohort-level `observation`, which applies *after* "
        "`occurrence`: person 1's first event lacks the 30 days, so person 1 does not enter.",
    ),
):
    case(
        id=f"observation-{where}-level",
        section="Observation",
        title=f"{where}-level observation: before or after the occurrence",
        doc=text,
        data=_copy(_ENTRY_OBS),
        spec=spec(cohort_spec, _BY_MONTH, {"name": "flow", "attrition": True}),
        expected={"by_month": by_month, "flow": flow},
    )
_DEMO_DATA = {
    "person": [
        person(1, F, 2002, month_of_birth=12),
        person(2, M, 2003),
        person(3, F, 1955),
        person(4, F, 1954),
        person(5, 8551, 1980),
    ],
    "condition_occurrence": [cond(i, 100, "2020-01-01") for i in range(1, 6)],
}
case(
    id="demographics-age-sex",
    section="Demographics",
    title="age and sex",
    doc="Age at index is year(index) - year_of_birth (months and days of birth are ignored: "
    "person 1, born in December 2002, is 18 on 2020-01-01). `sex` takes gender concept ids or "
    "`male` / `female`.",
    data=_DEMO_DATA,
    spec=spec(
        cohort100(demographics={"age": {"min": 18, "max": 65}, "sex": ["female", "male"]}),
        PERSONS,
        {"name": "by_sex", "count": "persons", "by": ["sex"]},
    ),
    expected={"persons": [(2,)], "by_sex": [(F, 2)]},
)
case(
    id="demographics-year-of-birth",
    section="Demographics",
    title="year of birth",
    doc="`year_of_birth` bounds are inclusive.",
    data=_copy(_DEMO_DATA),
    spec=spec(cohort100(demographics={"year_of_birth": {"min": 1950, "max": 1955}}), PERSONS),
    expected={"persons": [(2,)]},
)

# --------------------------------------------------------------------------------------------
# Criteria
# --------------------------------------------------------------------------------------------

case(
    id="criteria-exclude-before",
    section="Criteria",
    title="exclude events before the index day",
    doc="Windows are in days from the index date, both ends inclusive, `null` unbounded; an "
    'event is in a window when its start date is. `{start: null, end: -1}` is "any time '
    "before the index day\": person 2's event on the index day does not exclude them.",
    data={
        "person": [person(i) for i in (1, 2, 3, 4)],
        "condition_occurrence": [
            *[cond(i, 100, "2020-06-01") for i in (1, 2, 3, 4)],
            cond(1, 200, "2020-01-01"),
            cond(2, 200, "2020-06-01"),
            cond(3, 200, "2020-06-02"),
        ],
    },
    spec=spec(
        cohort100(
            criteria=[{"exclude": {"condition": [200], "window": {"start": None, "end": -1}}}]
        ),
        PERSONS,
    ),
    expected={"persons": [(3,)]},
)
case(
    id="criteria-require-counts",
    section="Criteria",
    title="require between min_count and max_count events",
    doc="`require` holds when the number of matching events (rows: two on one day count "
    "twice) in the window is at least `min_count` (default 1) and at most `max_count`. Here "
    "2 to 3 drug 500 events in the 30 days before the index day.",
    data={
        "person": [person(i) for i in (1, 2, 3, 4, 5)],
        "condition_occurrence": [cond(i, 100, "2020-03-01") for i in (1, 2, 3, 4, 5)],
        "drug_exposure": [
            drug(1, 500, "2020-01-31"),
            drug(1, 500, "2020-02-29"),
            drug(2, 500, "2020-01-30"),
            drug(2, 500, "2020-02-29"),
            *[drug(3, 500, d) for d in ("2020-02-25", "2020-02-26", "2020-02-27", "2020-02-28")],
            drug(4, 500, "2020-02-20"),
            drug(4, 500, "2020-02-20"),
            drug(4, 500, "2020-02-29"),
            drug(5, 500, "2020-03-01"),
            drug(5, 500, "2020-02-29"),
        ],
    },
    spec=spec(
        cohort100(
            criteria=[
                {
                    "require": {
                        "drug": [500],
                        "window": {"start": -30, "end": -1},
                        "min_count": 2,
                        "max_count": 3,
                    }
                }
            ]
        ),
        PERSONS,
    ),
    expected={"persons": [(2,)]},
)
case(
    id="criteria-at-most",
    section="Criteria",
    title="at most N events",
    doc='`min_count: 0` with `max_count: 1` is "at most one": persons without any event pass.',
    data={
        "person": [person(i) for i in (1, 2, 3)],
        "condition_occurrence": [cond(i, 100, "2020-03-01") for i in (1, 2, 3)],
        "drug_exposure": [
            drug(2, 500, "2020-02-25"),
            drug(3, 500, "2020-02-25"),
            drug(3, 500, "2020-02-27"),
        ],
    },
    spec=spec(
        cohort100(
            criteria=[
                {
                    "require": {
                        "drug": [500],
                        "window": {"start": -30, "end": -1},
                        "min_count": 0,
                        "max_count": 1,
                    }
                }
            ]
        ),
        PERSONS,
    ),
    expected={"persons": [(2,)]},
)
case(
    id="criteria-index-event-counts",
    section="Criteria",
    title="the entry event itself counts",
    doc="When a criterion's window includes day 0 and its event matches the entry event, the "
    'entry event counts: "two diagnoses within a year" is the last diagnosis plus one more in '
    "the 365 days before.",
    data={
        "person": [person(1), person(2)],
        "condition_occurrence": [
            cond(1, 100, "2020-01-01"),
            cond(1, 100, "2020-05-01"),
            cond(2, 100, "2020-05-01"),
        ],
    },
    spec=spec(
        {
            "entry": {"condition": [100], "occurrence": "last"},
            "criteria": [
                {
                    "require": {
                        "condition": [100],
                        "window": {"start": -365, "end": 0},
                        "min_count": 2,
                    }
                }
            ],
        },
        PERSONS,
    ),
    expected={"persons": [(1,)]},
)
case(
    id="criteria-groups",
    section="Criteria",
    title="all_of / any_of groups and attrition",
    doc="`any_of` holds when one child holds, `all_of` when all do; groups nest. `attrition` "
    "counts the persons left after each step, in order, labelled by the criterion's `name` or "
    "its position.",
    data={
        "person": [person(i) for i in (1, 2, 3, 4, 5)],
        "condition_occurrence": [
            *[cond(i, 100, "2020-06-01") for i in (1, 2, 3, 4, 5)],
            cond(4, 200, "2021-07-06"),
        ],
        "drug_exposure": [drug(1, 500, "2020-05-22"), drug(4, 500, "2020-06-01")],
        "procedure_occurrence": [
            proc(2, 600, "2020-02-22"),
            proc(3, 600, "2020-03-03"),
            proc(5, 600, "2020-05-31"),
        ],
        "measurement": [
            meas(1, 3000, "2020-06-06"),
            meas(3, 3000, "2020-05-01"),
            meas(4, 3000, "2020-07-01"),
            meas(5, 3000, "2020-05-02"),
        ],
    },
    spec=spec(
        cohort100(
            criteria=[
                {
                    "name": "treated",
                    "any_of": [
                        {"require": {"drug": [500], "window": {"start": -90, "end": 0}}},
                        {"require": {"procedure": [600], "window": {"start": -90, "end": 0}}},
                    ],
                },
                {
                    "all_of": [
                        {"exclude": {"condition": [200]}},
                        {"require": {"measurement": [3000], "window": {"start": -30, "end": 30}}},
                    ]
                },
            ]
        ),
        PERSONS,
        {"name": "flow", "attrition": True},
    ),
    expected={
        "persons": [(2,)],
        "flow": [(0, "entry", 5), (1, "treated", 4), (2, "criteria[1]", 2)],
    },
)
case(
    id="criteria-per-entry",
    section="Criteria",
    title="criteria apply to each entry",
    doc="With `occurrence: all`, windows are relative to each entry's own index date: only "
    "the June entry has the drug in the 60 days before.",
    data={
        "person": [person(1)],
        "condition_occurrence": [cond(1, 100, "2020-01-01"), cond(1, 100, "2020-06-01")],
        "drug_exposure": [drug(1, 500, "2020-05-01")],
    },
    spec=spec(
        {
            "entry": {"condition": [100], "occurrence": "all"},
            "criteria": [{"require": {"drug": [500], "window": {"start": -60, "end": -1}}}],
        },
        {"name": "by_month", "count": "entries", "by": ["index_month"]},
    ),
    expected={"by_month": [(6, 1)]},
)

case(
    id="criteria-window-observed",
    section="Criteria",
    title="only events in the current observation period",
    doc="`observed: true` on a window counts only events that also fall in the observation "
    "period containing the index date (as OHDSI Circe does by default). Person 1's earlier "
    "event lies in a previous observation period and does not exclude them; person 3 has no "
    "observation period, so an observed window sees nothing.",
    data={
        "person": [person(1), person(2), person(3)],
        "condition_occurrence": [
            *[cond(i, 100, "2020-06-01") for i in (1, 2, 3)],
            cond(1, 200, "2017-01-01"),
            cond(2, 200, "2020-01-01"),
            cond(3, 200, "2017-01-01"),
        ],
        "observation_period": [
            period(1, "2015-01-01", "2018-12-31"),
            period(1, "2019-06-01", "2021-12-31"),
            period(2, "2015-01-01", "2018-12-31"),
            period(2, "2019-06-01", "2021-12-31"),
        ],
    },
    spec=spec(
        cohort100(
            criteria=[
                {
                    "exclude": {
                        "condition": [200],
                        "window": {"start": None, "end": -1, "observed": True},
                    }
                }
            ]
        ),
        PERSONS,
    ),
    expected={"persons": [(2,)]},
)

_QUALIFY = {
    "person": [person(1), person(2), person(3)],
    "condition_occurrence": [
        cond(1, 100, "2020-01-01"),
        cond(1, 100, "2020-03-01"),
        cond(1, 100, "2020-05-01"),
        cond(2, 100, "2020-02-01"),
        cond(3, 100, "2020-04-01"),
    ],
    "drug_exposure": [
        drug(1, 500, "2020-03-10"),
        drug(1, 500, "2020-05-05"),
        drug(2, 500, "2020-02-05"),
    ],
    "measurement": [meas(3, 3000, "2020-04-15")],
}
_DRUG_AFTER = {"require": {"drug": [500], "window": {"start": 0, "end": 30}}}
_FLOW = {"name": "flow", "attrition": True}
for cid, cohort_spec, by_month, flow, text in (
    (
        "criteria-on-entry",
        {"entry": {"condition": [100], "occurrence": "first", "criteria": [_DRUG_AFTER]}},
        [(2, 1), (3, 1)],
        [(0, "entry", 2)],
        "`criteria` inside `entry` are attached to the entry event: written like cohort "
        "criteria, evaluated for every candidate event with *its* start date as index, and "
        "applied *before* `occurrence` (ATLAS's correlated criteria on a primary event). "
        "`occurrence: first` then picks the first event that has a drug within 30 days: person "
        "1's 2020-03-01, not 2020-01-01. Person 3 never has one.",
    ),
    (
        "criteria-after-occurrence",
        {"entry": {"condition": [100], "occurrence": "first"}, "criteria": [_DRUG_AFTER]},
        [(2, 1)],
        [(0, "entry", 3), (1, "criteria[0]", 1)],
        "The same criterion at the cohort level applies *after* `occurrence`: person 1's first "
        "event (2020-01-01) has no drug within 30 days, so person 1 does not enter.",
    ),
    (
        "qualified-occurrence",
        {
            "entry": {"condition": [100], "occurrence": "all"},
            "criteria": [_DRUG_AFTER],
            "qualified_occurrence": "last",
        },
        [(2, 1), (5, 1)],
        [(0, "entry", 3), (1, "criteria[0]", 2)],
        "`qualified_occurrence` (`first`, `last`; default `all`) picks among each person's "
        "entries that passed *every* rule (ATLAS's qualified / expression limit, \"the first "
        'qualifying event"): here every event enters, the criterion keeps those with a drug '
        "within 30 days, and person 1 keeps the last of them (2020-05-01). Persons are not "
        "changed by the pick, so attrition has no step for it.",
    ),
    (
        "criteria-on-one-entry-event",
        {
            "entry": {
                "any_of": [
                    {"condition": [100], "criteria": [_DRUG_AFTER]},
                    {"measurement": [3000]},
                ],
                "occurrence": "first",
            }
        },
        [(2, 1), (3, 1), (4, 1)],
        [(0, "entry", 3)],
        "With `any_of`, each entry event carries its own `criteria`: a condition is a candidate "
        "only with a drug within 30 days, a measurement always. Person 3's condition "
        "(2020-04-01) is not a candidate, the measurement (2020-04-15) is.",
    ),
):
    case(
        id=cid,
        section="Criteria",
        title=cid.replace("-", " "),
        doc=text,
        data=_copy(_QUALIFY),
        spec=spec(cohort_spec, _BY_MONTH, _FLOW),
        expected={"by_month": by_month, "flow": flow},
    )

# --------------------------------------------------------------------------------------------
# Exit and eras
# --------------------------------------------------------------------------------------------

_EXIT_DATA = {
    "person": [person(1), person(2)],
    "condition_occurrence": [
        cond(1, 100, "2020-01-01"),
        cond(1, 100, "2020-01-20"),
        cond(1, 100, "2020-03-01"),
        cond(2, 100, "2020-01-01"),
        cond(2, 100, "2020-01-31"),
    ],
}
_ALL100 = {"condition": [100], "occurrence": "all"}
case(
    id="exit-fixed-collapse",
    section="Exit",
    title="fixed exit; overlapping entries collapse",
    doc="`exit: {days: N}` ends each entry N days after its index. Entries of one person whose "
    "[index, exit] intervals overlap or touch are collapsed into one (the earliest index, the "
    "latest exit): person 1's January entries merge; person 2's entries touch on 2020-01-31.",
    data=_EXIT_DATA,
    spec=spec(
        {"entry": _ALL100, "exit": {"days": 30}},
        PERSONS,
        {"name": "by_month", "count": "entries", "by": ["index_month"]},
    ),
    expected={"persons": [(2,)], "by_month": [(1, 2), (3, 1)]},
)
case(
    id="exit-collapse-days",
    section="Exit",
    title="collapse_days",
    doc="`collapse_days` also joins entries at most that many days apart (next index <= exit + "
    "collapse_days).",
    data=_copy(_EXIT_DATA),
    spec=spec({"entry": _ALL100, "exit": {"days": 0, "collapse_days": 19}}, ENTRIES),
    expected={"entries": [(4,)]},
)
case(
    id="exit-capped-by-observation",
    section="Exit",
    title="an exit never passes the end of observation",
    doc="With `observation`, every exit is capped at the end of the observation period "
    "containing the index: the first entry ends on 2020-03-31, so the two entries no longer "
    "overlap.",
    data={
        "person": [person(1)],
        "condition_occurrence": [cond(1, 100, "2020-01-01"), cond(1, 100, "2020-06-01")],
        "observation_period": [
            period(1, "2019-01-01", "2020-03-31"),
            period(1, "2020-05-01", "2021-12-31"),
        ],
    },
    spec=spec({"entry": _ALL100, "observation": {"prior_days": 0}, "exit": {"days": 365}}, ENTRIES),
    expected={"entries": [(2,)]},
)
_TAR = {
    "name": "tar",
    "outcome": {"condition": [200], "window": {"start": 0, "end": None}},
    "rate": True,
}
case(
    id="exit-exposure",
    section="Exit",
    title="continuous exposure",
    doc="`exit: {exposure: {gap_days: G, offset_days: D}}` follows the person's events matching "
    "the entry into eras (an event starting at most G days after the era's end joins it) and "
    "exits at the end of the era containing the index plus D days. The two first exposures "
    "form one era (16-day gap) ending 2020-03-15; the May one starts another. Person-days show "
    "the exits: 75 + 30.",
    data={
        "person": [person(1)],
        "drug_exposure": [
            drug(1, 500, "2020-01-01", "2020-01-30"),
            drug(1, 500, "2020-02-15", "2020-03-15"),
            drug(1, 500, "2020-05-01", "2020-05-30"),
        ],
    },
    spec=spec(
        {"entry": {"drug": [500], "occurrence": "all"}, "exit": {"exposure": {"gap_days": 30}}},
        ENTRIES,
        _TAR,
    ),
    expected={"entries": [(2,)], "tar": [(1, 0, 0.0, 105, 0, 0.0)]},
)
case(
    id="exit-null-end-date",
    section="Exit",
    title="a NULL end date ends on the start date",
    doc="An event whose end date is NULL (or a domain without one) ends on its start date. "
    "The condition on 2020-01-20 starts within 30 days of the first one's end (2020-01-01), "
    "so the era ends on 2020-01-25 and the exit, 2 days later, on 2020-01-27.",
    data={
        "person": [person(1)],
        "condition_occurrence": [
            cond(1, 100, "2020-01-01"),
            cond(1, 100, "2020-01-20", "2020-01-25"),
        ],
    },
    spec=spec(cohort100(exit={"exposure": {"gap_days": 30, "offset_days": 2}}), _TAR),
    expected={"tar": [(1, 0, 0.0, 27, 0, 0.0)]},
)

case(
    id="exit-event-end",
    section="Exit",
    title="exit at the entry event's end",
    doc="`exit: {event_end: {offset_days: D}}` ends each entry D days after its entry event's "
    "end date (its start date when the end is NULL). The first two entries then overlap and "
    "collapse; person-days show the exits (14 + 8).",
    data={
        "person": [person(1)],
        "condition_occurrence": [
            cond(1, 100, "2020-01-01", "2020-01-10"),
            cond(1, 100, "2020-01-12"),
            cond(1, 100, "2020-01-15", "2020-01-20"),
        ],
    },
    spec=spec({"entry": _ALL100, "exit": {"event_end": {"offset_days": 2}}}, ENTRIES, _TAR),
    expected={"entries": [(2,)], "tar": [(1, 0, 0.0, 22, 0, 0.0)]},
)

# --------------------------------------------------------------------------------------------
# Counts and breakdowns
# --------------------------------------------------------------------------------------------

case(
    id="by-sex-age-year",
    section="Breakdowns",
    title="sex, age band, index year",
    doc="`{age_band: N}` is the band's lower bound: floor(age / N) * N. A person counts in "
    "every group they have an entry in.",
    data={
        "person": [person(1, F, 1980), person(2, F, 1985), person(3, M, 1971), person(4, M, 1970)],
        "condition_occurrence": [
            cond(1, 100, "2020-01-01"),
            cond(2, 100, "2020-02-01"),
            cond(3, 100, "2020-12-31"),
            cond(4, 100, "2021-01-01"),
        ],
    },
    spec=spec(
        cohort100(),
        {"name": "sex_age", "count": "persons", "by": ["sex", {"age_band": 10}]},
        {"name": "age5", "count": "persons", "by": [{"age_band": 5}]},
        {"name": "year", "count": "persons", "by": ["index_year"]},
    ),
    expected={
        "sex_age": [(M, 40, 1), (M, 50, 1), (F, 30, 1), (F, 40, 1)],
        "age5": [(35, 1), (40, 1), (45, 1), (50, 1)],
        "year": [(2020, 3), (2021, 1)],
    },
)
case(
    id="by-age-band-negative",
    section="Breakdowns",
    title="age bands round down",
    doc="Age bands use floor division, also for an (invalid) index date before the year of "
    "birth: age -1 falls in band -5 with width 5.",
    data={
        "person": [person(1, yob=2021), person(2, yob=2016)],
        "condition_occurrence": [cond(1, 100, "2020-01-01"), cond(2, 100, "2020-01-01")],
    },
    spec=spec(cohort100(), {"name": "age5", "count": "persons", "by": [{"age_band": 5}]}),
    expected={"age5": [(-5, 1), (0, 1)]},
)
case(
    id="by-visit-site-column",
    section="Breakdowns",
    title="site, visit type, entry concept, any concept column",
    doc="`site` and `visit_type` are the `care_site_id` and `visit_concept_id` of the entry "
    "event's visit (NULL without one: a NULL forms its own group). `entry_concept` is the "
    "entry event's concept; `{column: person.X}` or `{column: entry.X}` breaks down by any "
    "`*_concept_id` column of the person or of the entry event's table.",
    data={
        "person": [
            person(1, race_concept_id=8527),
            person(2, race_concept_id=8516),
            person(3, race_concept_id=8527),
        ],
        "concept_ancestor": ancestors((100, 101), (100, 102)),
        "visit_occurrence": [
            visit(1, 1, 9201, "2020-01-01", site=10),
            visit(2, 2, 9202, "2020-01-01", site=20),
        ],
        "condition_occurrence": [
            cond(1, 101, "2020-01-01", visit_occurrence_id=1, condition_type_concept_id=32020),
            cond(2, 102, "2020-01-01", visit_occurrence_id=2, condition_type_concept_id=32817),
            cond(3, 101, "2020-01-01", condition_type_concept_id=32817),
        ],
    },
    spec=spec(
        {"entry": {"condition": {"concepts": [100], "descendants": True}}},
        {"name": "site", "count": "persons", "by": ["site"]},
        {"name": "visit", "count": "persons", "by": ["visit_type"]},
        {
            "name": "concept_race",
            "count": "persons",
            "by": ["entry_concept", {"column": "person.race_concept_id"}],
        },
        {"name": "type", "count": "entries", "by": [{"column": "entry.condition_type_concept_id"}]},
    ),
    expected={
        "site": [(10, 1), (20, 1), (None, 1)],
        "visit": [(9201, 1), (9202, 1), (None, 1)],
        "concept_race": [(101, 8527, 2), (102, 8516, 1)],
        "type": [(32020, 1), (32817, 2)],
    },
)
_EMPTY_STATS = (0, None, None, None, None, None, None, None, None, None)
case(
    id="empty-cohort",
    section="Counts",
    title="an empty cohort",
    doc="Without `by` an analysis always has one row (a count of 0, NULL statistics); with "
    "`by` only groups that have an entry appear.",
    data={"person": [person(1)], "condition_occurrence": [cond(1, 200, "2020-01-01")]},
    spec=spec(
        cohort100(),
        PERSONS,
        {"name": "by_sex", "count": "persons", "by": ["sex"]},
        {"name": "o", "outcome": {"death": {}, "window": {"start": 0, "end": 30}}},
        {"name": "age", "distribution": "age"},
    ),
    expected={"persons": [(0,)], "by_sex": [], "o": [(0, 0, None)], "age": [_EMPTY_STATS]},
)

# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------

case(
    id="outcome-proportion",
    section="Outcomes",
    title="persons with an outcome in a window",
    doc="`outcome` counts persons with at least one outcome event starting in the window; "
    "`proportion` = outcome_persons / persons. Day 0 is outside `{start: 1, end: 365}`; day "
    "365 is inside.",
    data={
        "person": [person(1, F), person(2, F), person(3, M), person(4, M), person(5, F)],
        "condition_occurrence": [
            *[cond(i, 100, "2020-01-01") for i in (1, 2, 3, 4, 5)],
            cond(1, 200, "2020-01-01"),
            cond(2, 200, "2020-12-31"),
            cond(3, 200, "2021-01-01"),
            cond(4, 200, "2020-02-01"),
            cond(4, 200, "2020-03-01"),
        ],
    },
    spec=spec(
        cohort100(),
        {
            "name": "o",
            "outcome": {"condition": [200], "window": {"start": 1, "end": 365}},
            "by": ["sex"],
        },
    ),
    expected={"o": [(M, 2, 1, 0.5), (F, 3, 1, 1 / 3)]},
)
case(
    id="outcome-rate",
    section="Outcomes",
    title="incidence rate over a time at risk",
    doc="With `rate: true`, each entry is at risk from index + window start until the window "
    "end, its exit or its first outcome, whichever comes first (days counted inclusively). "
    "Outcomes after the exit do not count. Person 1 leaves observation on 2020-03-31 (90 days "
    "at risk, the outcome in May is after the exit); person 2 has the outcome on 2020-05-01 "
    "(121 days). incidence_per_1000py = outcome_entries / (person_days / 365.25) * 1000.",
    data={
        "person": [person(1), person(2)],
        "condition_occurrence": [
            cond(1, 100, "2020-01-01"),
            cond(2, 100, "2020-01-01"),
            cond(1, 200, "2020-05-01"),
            cond(2, 200, "2020-05-01"),
        ],
        "observation_period": [
            period(1, "2019-01-01", "2020-03-31"),
            period(2, "2019-01-01", "2020-12-31"),
        ],
    },
    spec=spec(
        cohort100(observation={"prior_days": 0}, exit="observation_end"),
        {
            "name": "o",
            "outcome": {"condition": [200], "window": {"start": 1, "end": 365}},
            "rate": True,
        },
    ),
    expected={"o": [(2, 1, 0.5, 211, 1, 1 * 365250 / 211)]},
)

case(
    id="outcome-rate-window",
    section="Outcomes",
    title="a rate over a window, by sex",
    doc="Without an exit, the time at risk is the window. An outcome on day 0 gives one day at "
    "risk; an outcome after the window does not count.",
    data={
        "person": [person(1, F), person(2, M), person(3, F)],
        "condition_occurrence": [
            *[cond(i, 100, "2020-01-01") for i in (1, 2, 3)],
            cond(1, 200, "2020-01-01"),
            cond(3, 200, "2020-01-31"),
        ],
    },
    spec=spec(
        cohort100(),
        {
            "name": "o",
            "outcome": {"condition": [200], "window": {"start": 0, "end": 29}},
            "rate": True,
            "by": ["sex"],
        },
    ),
    expected={"o": [(F, 2, 1, 0.5, 31, 1, 365250 / 31), (M, 1, 0, 0.0, 30, 0, 0.0)]},
)

# --------------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------------

case(
    id="distribution-value",
    section="Distributions",
    title="measurement values around the index",
    doc="`distribution: {value: ...}` summarises `value_as_number` of the events in the window "
    "(NULL values are left out). Percentiles interpolate linearly between closest ranks (as "
    "DuckDB `quantile_cont`, PostgreSQL `percentile_cont`): p10 of 10, 20, 30, 40 is 13. "
    "`occurrence: last` keeps one value per entry, the latest in the window.",
    data={
        "person": [person(1), person(2), person(3)],
        "condition_occurrence": [cond(i, 100, "2020-06-01") for i in (1, 2, 3)],
        "measurement": [
            meas(1, 3000, "2020-05-02", 10.0),
            meas(1, 3000, "2020-05-31", 20.0),
            meas(1, 3000, "2020-05-01", 99.0),
            meas(2, 3000, "2020-06-01", 30.0),
            meas(2, 3000, "2020-05-27", None),
            meas(3, 3000, "2020-05-22", 40.0),
        ],
    },
    spec=spec(
        cohort100(),
        {
            "name": "all",
            "distribution": {"value": {"measurement": [3000], "window": {"start": -30, "end": 0}}},
        },
        {
            "name": "last",
            "distribution": {
                "value": {
                    "measurement": [3000],
                    "window": {"start": -30, "end": 0},
                    "occurrence": "last",
                }
            },
        },
    ),
    expected={
        "all": [(4, 25.0, math.sqrt(500 / 3), 10.0, 13.0, 17.5, 25.0, 32.5, 37.0, 40.0)],
        "last": [(3, 30.0, 10.0, 20.0, 22.0, 25.0, 30.0, 35.0, 38.0, 40.0)],
    },
)
case(
    id="distribution-age-days",
    section="Distributions",
    title="age at index and days to outcome",
    doc="`distribution: age` summarises age at index, one number per entry; "
    "`distribution: {days_to_outcome: ...}` the days from index to the first outcome in the "
    "window, for entries that have one. `sd` is the sample standard deviation (n - 1).",
    data={
        "person": [person(1, yob=1980), person(2, yob=1990), person(3, yob=2000)],
        "condition_occurrence": [
            *[cond(i, 100, "2020-01-01") for i in (1, 2, 3)],
            cond(1, 200, "2020-01-11"),
            cond(1, 200, "2020-02-20"),
            cond(2, 200, "2020-01-01"),
            cond(2, 200, "2020-04-10"),
        ],
    },
    spec=spec(
        cohort100(),
        {"name": "age", "distribution": "age"},
        {
            "name": "days",
            "distribution": {
                "days_to_outcome": {"condition": [200], "window": {"start": 1, "end": None}}
            },
        },
    ),
    expected={
        "age": [(3, 30.0, 10.0, 20.0, 22.0, 25.0, 30.0, 35.0, 38.0, 40.0)],
        "days": [(2, 55.0, math.sqrt(2 * 45**2), 10.0, 19.0, 32.5, 55.0, 77.5, 91.0, 100.0)],
    },
)

case(
    id="distribution-first-by",
    section="Distributions",
    title="the first value per entry, by sex",
    doc="`occurrence: first` keeps each entry's earliest value in the window. A group with one "
    "number has a NULL `sd`; every percentile is that number.",
    data={
        "person": [person(1, F), person(2, F), person(3, M)],
        "condition_occurrence": [cond(i, 100, "2020-06-01") for i in (1, 2, 3)],
        "measurement": [
            meas(1, 3000, "2020-05-12", 5.0),
            meas(1, 3000, "2020-05-22", 7.0),
            meas(2, 3000, "2020-05-27", 9.0),
            meas(3, 3000, "2020-05-31", 4.0),
            meas(3, 3000, "2020-06-01", 6.0),
        ],
    },
    spec=spec(
        cohort100(),
        {
            "name": "first",
            "by": ["sex"],
            "distribution": {
                "value": {
                    "measurement": [3000],
                    "window": {"start": -30, "end": 0},
                    "occurrence": "first",
                }
            },
        },
    ),
    expected={
        "first": [
            (F, 2, 7.0, math.sqrt(8), 5.0, 5.4, 6.0, 7.0, 8.0, 8.6, 9.0),
            (M, 1, 4.0, None, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0),
        ]
    },
)

# --------------------------------------------------------------------------------------------
# Survival
# --------------------------------------------------------------------------------------------

_SURV_DATA = {
    "person": [person(i) for i in (1, 2, 3, 4, 5)],
    "condition_occurrence": [
        *[cond(i, 100, "2020-01-01") for i in (1, 2, 3, 4, 5)],
        cond(1, 200, "2020-01-11"),
        cond(2, 200, "2020-01-11"),
        cond(4, 200, "2020-02-20"),
        cond(5, 200, "2020-05-30"),
    ],
}
_SURV = {"name": "km", "survival": {"condition": [200], "window": {"start": 1, "end": 100}}}
case(
    id="survival-window",
    section="Survival",
    title="Kaplan-Meier, censored at the window end",
    doc="`survival` gives Kaplan-Meier steps of the time from index to the first outcome in the "
    "window; entries without one are censored at the window end (day 100). One row per distinct "
    "time: at_risk (time >= t), events, censored, survival = product of (1 - events / at_risk).",
    data=_SURV_DATA,
    spec=spec(cohort100(), _SURV),
    expected={"km": [(10, 5, 2, 0, 0.6), (50, 3, 1, 0, 0.4), (100, 2, 0, 2, 0.4)]},
)
case(
    id="survival-exit",
    section="Survival",
    title="Kaplan-Meier, censored at exit",
    doc="Follow-up also ends at the exit (here 60 days after index).",
    data=_copy(_SURV_DATA),
    spec=spec(cohort100(exit={"days": 60}), _SURV),
    expected={"km": [(10, 5, 2, 0, 0.6), (50, 3, 1, 0, 0.4), (60, 2, 0, 2, 0.4)]},
)

case(
    id="survival-by-sex",
    section="Survival",
    title="Kaplan-Meier by sex",
    doc="With `by`, one curve per group.",
    data={
        "person": [person(1, F), person(2, M), person(3, F), person(4, M), person(5, F)],
        "condition_occurrence": [
            *[cond(i, 100, "2020-01-01") for i in (1, 2, 3, 4, 5)],
            cond(1, 200, "2020-01-11"),
            cond(2, 200, "2020-01-11"),
            cond(4, 200, "2020-02-20"),
            cond(5, 200, "2020-05-30"),
        ],
    },
    spec=spec(cohort100(), {**_SURV, "by": ["sex"]}),
    expected={
        "km": [
            (F, 10, 3, 1, 0, 2 / 3),
            (F, 100, 2, 0, 2, 2 / 3),
            (M, 10, 2, 1, 0, 0.5),
            (M, 50, 1, 1, 0, 0.0),
        ]
    },
)

CASES_BY_ID = {c.id: c for c in CASES}
assert len(CASES_BY_ID) == len(CASES), "case ids must be unique"
