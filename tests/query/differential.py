"""Random small CDM data and random studies, for the differential tests.

Data comes from a seeded `random.Random` (one generator, so a failing seed reproduces
anywhere); studies are hypothesis strategies over the query model, built with the model's own
constructors (combinations the model refuses are filtered out). The vocabulary is fixed and
tiny (100 > 101 > 103, 100 > 102; 200 and 201 alone) so concept sets, descendants and
exclusions all bite; dates fall in a few months so windows, periods and eras overlap.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from hypothesis import strategies as st

from passerelle.cdm.schema import TABLES_BY_NAME
from passerelle.query import model as m

CONCEPTS = (100, 101, 102, 103, 200, 201)
ANCESTRY = ((100, 101), (100, 102), (101, 103), (100, 103), (100, 100), (200, 200))
SEXES = (8507, 8532, 0)
VISIT_TYPES = (9201, 9202)
UNITS = (8840, 8713)
VALUE_CONCEPTS = (4000, 4001)
VALUES = (None, -3.5, 0.0, 1.0, 2.5, 7.0, 10.25, 1e-3)
BASE = dt.date(2020, 1, 1)
EHR = 32817


def _day(rng: random.Random, span: int = 150) -> dt.date:
    return BASE + dt.timedelta(rng.randint(0, span))


def _fill(table: str, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for col in TABLES_BY_NAME[table].columns:
        v = row.get(col.name)
        if v is None and col.required:
            if col.type == "DATE":
                v = next(x for k, x in row.items() if k.endswith("_date") and x is not None)
            elif col.name.endswith("type_concept_id"):
                v = EHR
            else:
                v = 0
        out[col.name] = v
    return out


def random_cdm(rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    """A few persons with periods, visits and events of seven domains."""
    n = rng.randint(1, 5)
    data: dict[str, list[dict[str, Any]]] = {
        t: []
        for t in (
            "person",
            "observation_period",
            "visit_occurrence",
            "condition_occurrence",
            "drug_exposure",
            "measurement",
            "procedure_occurrence",
            "drug_era",
            "death",
            "concept_ancestor",
        )
    }
    ids = iter(range(1, 10_000))
    for pid in range(1, n + 1):
        data["person"].append(
            {
                "person_id": pid,
                "gender_concept_id": rng.choice(SEXES),
                "year_of_birth": rng.choice((1950, 1985, 2001, 2003, 2019)),
                "race_concept_id": rng.choice((8527, 8516)),
            }
        )
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            s = _day(rng, 120) - dt.timedelta(rng.randint(0, 90))
            data["observation_period"].append(
                {
                    "observation_period_id": next(ids),
                    "person_id": pid,
                    "observation_period_start_date": s,
                    "observation_period_end_date": s + dt.timedelta(rng.randint(0, 200)),
                }
            )
    persons = [p["person_id"] for p in data["person"]] + [99]  # 99: absent from person
    for _ in range(rng.randint(0, 4)):
        s = _day(rng)
        data["visit_occurrence"].append(
            {
                "visit_occurrence_id": next(ids),
                "person_id": rng.choice(persons),
                "visit_concept_id": rng.choice(VISIT_TYPES),
                "visit_start_date": s,
                "visit_end_date": s + dt.timedelta(rng.randint(0, 3)),
                "care_site_id": rng.choice((None, 1, 2)),
            }
        )
    visit_ids = [None] + [v["visit_occurrence_id"] for v in data["visit_occurrence"]]

    def end(s: dt.date, nullable: bool = True) -> dt.date | None:
        if nullable and rng.random() < 0.3:
            return None
        return s + dt.timedelta(rng.choice((0, 1, 5, 20, 40)))

    for _ in range(rng.randint(0, 8)):
        s = _day(rng)
        data["condition_occurrence"].append(
            {
                "condition_occurrence_id": next(ids),
                "person_id": rng.choice(persons),
                "condition_concept_id": rng.choice(CONCEPTS),
                "condition_start_date": s,
                "condition_end_date": end(s),
                "visit_occurrence_id": rng.choice(visit_ids),
                "condition_source_concept_id": rng.choice((0, 500)),
            }
        )
    for _ in range(rng.randint(0, 8)):
        s = _day(rng)
        data["drug_exposure"].append(
            {
                "drug_exposure_id": next(ids),
                "person_id": rng.choice(persons),
                "drug_concept_id": rng.choice(CONCEPTS),
                "drug_exposure_start_date": s,
                "drug_exposure_end_date": end(s, nullable=False),
                "visit_occurrence_id": rng.choice(visit_ids),
            }
        )
    for _ in range(rng.randint(0, 6)):
        data["measurement"].append(
            {
                "measurement_id": next(ids),
                "person_id": rng.choice(persons),
                "measurement_concept_id": rng.choice(CONCEPTS),
                "measurement_date": _day(rng),
                "value_as_number": rng.choice(VALUES),
                "unit_concept_id": rng.choice((None, *UNITS)),
                "value_as_concept_id": rng.choice((None, *VALUE_CONCEPTS)),
                "visit_occurrence_id": rng.choice(visit_ids),
            }
        )
    for _ in range(rng.randint(0, 3)):
        data["procedure_occurrence"].append(
            {
                "procedure_occurrence_id": next(ids),
                "person_id": rng.choice(persons),
                "procedure_concept_id": rng.choice(CONCEPTS),
                "procedure_date": _day(rng),
            }
        )
    for _ in range(rng.randint(0, 4)):
        s = _day(rng)
        data["drug_era"].append(
            {
                "drug_era_id": next(ids),
                "person_id": rng.choice(persons),
                "drug_concept_id": rng.choice(CONCEPTS),
                "drug_era_start_date": s,
                "drug_era_end_date": end(s, nullable=False),
            }
        )
    for pid in rng.sample(persons, rng.randint(0, min(2, len(persons)))):
        data["death"].append(
            {"person_id": pid, "death_date": _day(rng), "cause_concept_id": rng.choice(CONCEPTS)}
        )
    data["concept_ancestor"] = [
        {"ancestor_concept_id": a, "descendant_concept_id": d} for a, d in ANCESTRY
    ]
    return {t: [_fill(t, r) for r in rows] for t, rows in data.items()}


# ---------------------------------------------------------------------------------------------
# Studies
# ---------------------------------------------------------------------------------------------


def _maybe(build: Any, *args: Any, **kw: Any) -> Any:
    try:
        return build(*args, **kw)
    except m.ModelError:
        return None


def _valid(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy.filter(lambda x: x is not None)


concept_ids = st.sampled_from(CONCEPTS)
days = st.one_of(st.none(), st.integers(-60, 60))


@st.composite
def concept_sets(draw: Any) -> m.ConceptSet | None:
    if draw(st.integers(0, 5)) == 0:
        return None
    include = tuple(draw(st.lists(concept_ids, min_size=1, max_size=2, unique=True)))
    exclude = tuple(c for c in draw(st.lists(concept_ids, max_size=1)) if c not in include)
    source = (500,) if draw(st.integers(0, 6)) == 0 else ()
    return m.ConceptSet(
        concepts=include, descendants=draw(st.booleans()), exclude=exclude, source_concepts=source
    )


@st.composite
def _events(draw: Any, domains: tuple[m.Domain, ...] | None = None) -> m.Event | None:
    domain = draw(
        st.sampled_from(
            domains
            or (
                m.Domain.CONDITION,
                m.Domain.DRUG,
                m.Domain.MEASUREMENT,
                m.Domain.VISIT,
                m.Domain.DRUG_ERA,
                m.Domain.DEATH,
                m.Domain.PROCEDURE,
            )
        )
    )
    kw: dict[str, Any] = {}
    if domain is not m.Domain.VISIT:
        kw["concepts"] = draw(concept_sets())
    elif draw(st.booleans()):
        kw["visit_type"] = (draw(st.sampled_from(VISIT_TYPES)),)
    if draw(st.integers(0, 4)) == 0:
        a, b = sorted(draw(st.lists(st.integers(0, 150), min_size=2, max_size=2)))
        kw["dates"] = m.DateRange(BASE + dt.timedelta(a), BASE + dt.timedelta(b))
    if domain is m.Domain.MEASUREMENT:
        if draw(st.booleans()):
            lo, hi = sorted(draw(st.lists(st.sampled_from(VALUES[1:]), min_size=2, max_size=2)))
            kind = draw(st.sampled_from(("inclusive", "strict", "outside", "half")))
            if kind == "half":  # one bound only, strict or not
                strict = draw(st.booleans())
                kw["value"] = draw(
                    st.sampled_from(
                        (m.ValueRange(lo, None, min_exclusive=strict),
                         m.ValueRange(None, hi, max_exclusive=strict))
                    )
                )  # fmt: skip
            else:
                kw["value"] = _maybe(
                    m.ValueRange,
                    lo,
                    hi,
                    min_exclusive=kind == "strict" and draw(st.booleans()),
                    max_exclusive=kind == "strict" and draw(st.booleans()),
                    outside=kind == "outside",
                )
        if draw(st.integers(0, 3)) == 0:
            kw["unit"] = (draw(st.sampled_from(UNITS)),)
        if draw(st.integers(0, 4)) == 0:
            kw["value_concepts"] = (draw(st.sampled_from(VALUE_CONCEPTS)),)
    if domain in (m.Domain.CONDITION, m.Domain.DRUG) and draw(st.integers(0, 5)) == 0:
        kw["visit_type"] = (draw(st.sampled_from(VISIT_TYPES)),)
    return _maybe(m.Event, domain, **kw)


def events(domains: tuple[m.Domain, ...] | None = None) -> st.SearchStrategy[m.Event]:
    return _valid(_events(domains))


@st.composite
def windows(draw: Any, need_start: bool = False) -> m.Window:
    a, b = draw(days), draw(days)
    if need_start and a is None:
        a = draw(st.integers(-30, 10))
    if a is not None and b is not None and a > b:
        a, b = b, a
    return m.Window(a, b, observed=draw(st.integers(0, 4)) == 0)


def criteria(depth: int = 1) -> st.SearchStrategy[m.Criterion]:
    leaf = st.one_of(
        st.builds(
            lambda e, w, lo, extra: m.Require(e, w, lo, None if extra is None else lo + extra),
            events(),
            windows(),
            st.integers(0, 2),
            st.one_of(st.none(), st.integers(0, 2)),
        ),
        st.builds(m.Exclude, events(), windows()),
    )
    if depth == 0:
        return leaf
    group = st.builds(
        lambda kind, children: kind(tuple(children)),
        st.sampled_from((m.AllOf, m.AnyOf)),
        st.lists(criteria(depth - 1), min_size=1, max_size=2),
    )
    return st.one_of(leaf, leaf, group)


dimensions = st.sampled_from(
    (
        m.SEX,
        m.AgeBand(10),
        m.AgeBand(20),
        m.INDEX_YEAR,
        m.INDEX_MONTH,
        m.SITE,
        m.VISIT_TYPE,
        m.ENTRY_CONCEPT,
        m.Dimension(
            m.DimensionKind.CONCEPT_COLUMN, source=m.ColumnSource.PERSON, column="race_concept_id"
        ),
    )
)
by = st.lists(dimensions, max_size=2, unique_by=lambda d: d.output_name).map(tuple)


def analyses(i: int) -> st.SearchStrategy[m.Analysis]:
    name = f"a{i}"
    return st.one_of(
        st.builds(m.Count, st.just(name), st.sampled_from(tuple(m.CountUnit)), by),
        _valid(
            st.builds(
                _maybe,
                st.just(m.Outcome),
                st.just(name),
                events(),
                windows(True),
                by,
                st.booleans(),
            )
        ),
        _valid(
            st.builds(
                _maybe, st.just(m.Distribution), st.just(name), st.just(m.DistributionOf.AGE), by=by
            )
        ),
        st.builds(
            m.Distribution,
            st.just(name),
            st.just(m.DistributionOf.VALUE),
            events((m.Domain.MEASUREMENT,)),
            windows(),
            st.sampled_from(tuple(m.Occurrence)),
            by,
        ),
        st.builds(
            m.Distribution,
            st.just(name),
            st.just(m.DistributionOf.DAYS_TO_OUTCOME),
            events(),
            windows(),
            by=by,
        ),
        st.just(m.Attrition(name)),
        st.builds(m.Survival, st.just(name), events(), windows(True), by),
    )


exits = st.one_of(
    st.none(),
    st.builds(
        m.Exit, st.just(m.ExitKind.FIXED), st.integers(0, 40), collapse_days=st.integers(0, 10)
    ),
    st.builds(m.Exit, st.just(m.ExitKind.OBSERVATION_END)),
    st.builds(
        m.Exit,
        st.just(m.ExitKind.EXPOSURE),
        st.integers(0, 10),
        st.integers(0, 30),
        st.integers(0, 10),
    ),
    st.builds(
        m.Exit, st.just(m.ExitKind.EVENT_END), st.integers(0, 10), collapse_days=st.integers(0, 5)
    ),
)


@st.composite
def studies(draw: Any) -> m.Study:
    entry_events = tuple(draw(st.lists(events(), min_size=1, max_size=2)))
    entry_window = None
    if draw(st.integers(0, 3)) == 0:
        entry_window = m.Observation(draw(st.integers(0, 60)), draw(st.integers(0, 30)))
    entry_criteria: tuple[tuple[m.Criterion, ...], ...] = ()
    if draw(st.integers(0, 2)) == 0:
        entry_criteria = tuple(tuple(draw(st.lists(criteria(), max_size=2))) for _ in entry_events)
    entry = m.Entry(
        entry_events,
        draw(st.sampled_from(tuple(m.Occurrence))),
        entry_window,
        entry_criteria,
    )
    kw: dict[str, Any] = {}
    if draw(st.integers(0, 2)) == 0:
        kw["qualified_occurrence"] = draw(st.sampled_from(tuple(m.Occurrence)))
    if draw(st.booleans()):
        kw["observation"] = m.Observation(draw(st.integers(0, 60)), draw(st.integers(0, 30)))
    if draw(st.integers(0, 2)) == 0:
        lo = draw(st.one_of(st.none(), st.integers(0, 40)))
        kw["demographics"] = _maybe(
            m.Demographics,
            age=None if lo is None else m.IntRange(lo, None),
            sex=(draw(st.sampled_from(SEXES[:2])),) if draw(st.booleans()) else (),
        )
    if draw(st.integers(0, 3)) == 0:
        a, b = sorted(draw(st.lists(st.integers(0, 150), min_size=2, max_size=2)))
        kw["period"] = m.DateRange(BASE + dt.timedelta(a), BASE + dt.timedelta(b))
    kw["criteria"] = tuple(draw(st.lists(criteria(), max_size=2)))
    kw["exit"] = draw(exits)
    cohort = _maybe(m.Cohort, entry, **kw)
    if cohort is None:
        cohort = m.Cohort(entry)
    n = draw(st.integers(1, 3))
    chosen = tuple(draw(analyses(i)) for i in range(n))
    study = _maybe(m.Study, "s", cohort, chosen)
    if study is None:
        study = m.Study("s", cohort, (m.Count("a0", m.CountUnit.ENTRIES),))
    return study
