"""A small Python builder producing the same `Study` model a spec does.

    from passerelle.query.builder import StudyBuilder, condition, drug
    bleed = condition(192671, descendants=True)
    study = (
        StudyBuilder("celecoxib-new-users")
        .entry(drug(1118084, descendants=True), occurrence="first")
        .observation(prior_days=365)
        .demographics(age_min=18)
        .exclude(bleed, start=None, end=-1)
        .count("size")
        .count("by_sex_age", by=["sex", {"age_band": 10}])
        .outcome("gi_bleed_1y", bleed, start=1, end=365, by=["sex"])
        .build()
    )

`by` items are written as in a spec ("sex", {"age_band": 10}, {"column": "person.race_concept_id"})
or given as `model.Dimension` objects. Everything is validated by the model when built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from passerelle.query import model as m
from passerelle.query.parse import SIMPLE_DIMENSIONS

Ids = int | Iterable[int]


def _ids(v: Ids | None) -> tuple[int, ...]:
    if v is None:
        return ()
    if isinstance(v, int):
        return (v,)
    return tuple(v)


def event(
    domain: str | m.Domain,
    concepts: Ids | None = None,
    *,
    descendants: bool = False,
    exclude: Ids | None = None,
    exact: Ids | None = None,
    exclude_exact: Ids | None = None,
    source_concepts: Ids | None = None,
    dates: tuple[dt.date | None, dt.date | None] | None = None,
    value: tuple[float | None, float | None] | m.ValueRange | None = None,
    unit: Ids | None = None,
    value_concepts: Ids | None = None,
    visit_type: Ids | None = None,
) -> m.Event:
    """An event of one domain; with no concept at all, every event of the domain. `value` is
    ``(min, max)`` (inclusive) or a `model.ValueRange` (strict bounds, outside a range)."""
    cs = None
    if concepts is not None or exact is not None or source_concepts is not None:
        cs = m.ConceptSet(
            _ids(concepts), descendants, _ids(exclude), _ids(exact), _ids(exclude_exact),
            _ids(source_concepts),
        )  # fmt: skip
    return m.Event(
        m.Domain(domain),
        cs,
        m.DateRange(*dates) if dates is not None else None,
        value if isinstance(value, m.ValueRange) or value is None else m.ValueRange(*value),
        _ids(unit),
        _ids(value_concepts),
        _ids(visit_type),
    )


def _domain_helper(domain: m.Domain) -> Callable[..., m.Event]:
    def make(concepts: Ids | None = None, **kwargs: Any) -> m.Event:
        return event(domain, concepts, **kwargs)

    make.__name__ = domain.value
    make.__doc__ = f"A {domain.value} event (see `event`)."
    return make


condition = _domain_helper(m.Domain.CONDITION)
drug = _domain_helper(m.Domain.DRUG)
drug_era = _domain_helper(m.Domain.DRUG_ERA)
condition_era = _domain_helper(m.Domain.CONDITION_ERA)
procedure = _domain_helper(m.Domain.PROCEDURE)
measurement = _domain_helper(m.Domain.MEASUREMENT)
observation = _domain_helper(m.Domain.OBSERVATION)
visit = _domain_helper(m.Domain.VISIT)
device = _domain_helper(m.Domain.DEVICE)
death = _domain_helper(m.Domain.DEATH)


def dimension(d: str | dict[str, Any] | m.Dimension) -> m.Dimension:
    if isinstance(d, m.Dimension):
        return d
    if isinstance(d, str):
        return SIMPLE_DIMENSIONS[d]
    if "age_band" in d:
        return m.AgeBand(d["age_band"])
    source, _, column = d["column"].partition(".")
    return m.Dimension(m.DimensionKind.CONCEPT_COLUMN, None, m.ColumnSource(source), column)


def _by(by: Sequence[Any]) -> tuple[m.Dimension, ...]:
    return tuple(dimension(d) for d in by)


def require(
    ev: m.Event,
    start: int | None = None,
    end: int | None = None,
    min_count: int = 1,
    max_count: int | None = None,
    name: str | None = None,
) -> m.Require:
    return m.Require(ev, m.Window(start, end), min_count, max_count, name)


def exclude(
    ev: m.Event, start: int | None = None, end: int | None = None, name: str | None = None
) -> m.Exclude:
    return m.Exclude(ev, m.Window(start, end), name)


def all_of(*criteria: m.Criterion, name: str | None = None) -> m.AllOf:
    return m.AllOf(tuple(criteria), name)


def any_of(*criteria: m.Criterion, name: str | None = None) -> m.AnyOf:
    return m.AnyOf(tuple(criteria), name)


class StudyBuilder:
    """Collects a study step by step; `build()` returns the validated, frozen model."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entry: m.Entry | None = None
        self._observation: m.Observation | None = None
        self._demographics: m.Demographics | None = None
        self._period: m.DateRange | None = None
        self._criteria: list[m.Criterion] = []
        self._exit: m.Exit | None = None
        self._analyses: list[m.Analysis] = []
        self._qualified = m.Occurrence.ALL

    # -- cohort ------------------------------------------------------------------------------
    def entry(
        self,
        *events: m.Event,
        occurrence: str = "first",
        prior_days: int | None = None,
        post_days: int | None = None,
        criteria: Sequence[m.Criterion] | Sequence[Sequence[m.Criterion]] = (),
    ) -> StudyBuilder:
        """The entry events. `prior_days` / `post_days` give the entry's observation window
        and `criteria` the criteria on each entry event (both applied before `occurrence`,
        see `model.Entry`): a list of criteria for every event, or one list per event."""
        window = None
        if prior_days is not None or post_days is not None:
            window = m.Observation(prior_days or 0, post_days or 0)
        per_event: tuple[tuple[m.Criterion, ...], ...] = ()
        if criteria:
            if all(isinstance(c, Sequence) for c in criteria):
                per_event = tuple(tuple(c) for c in criteria)  # type: ignore[arg-type]
            else:
                per_event = tuple(tuple(criteria) for _ in events)  # type: ignore[arg-type, misc]
        self._entry = m.Entry(tuple(events), m.Occurrence(occurrence), window, per_event)
        return self

    def qualified_occurrence(self, occurrence: str) -> StudyBuilder:
        """Keep each person's first / last entry among those passing every rule."""
        self._qualified = m.Occurrence(occurrence)
        return self

    def observation(self, prior_days: int = 0, post_days: int = 0) -> StudyBuilder:
        self._observation = m.Observation(prior_days, post_days)
        return self

    def demographics(
        self,
        age_min: int | None = None,
        age_max: int | None = None,
        sex: Sequence[int] = (),
        year_of_birth_min: int | None = None,
        year_of_birth_max: int | None = None,
    ) -> StudyBuilder:
        age = m.IntRange(age_min, age_max) if (age_min, age_max) != (None, None) else None
        yob = (
            m.IntRange(year_of_birth_min, year_of_birth_max)
            if (year_of_birth_min, year_of_birth_max) != (None, None)
            else None
        )
        self._demographics = m.Demographics(age, tuple(sex), yob)
        return self

    def period(self, start: dt.date | None = None, end: dt.date | None = None) -> StudyBuilder:
        self._period = m.DateRange(start, end)
        return self

    def criterion(self, c: m.Criterion) -> StudyBuilder:
        self._criteria.append(c)
        return self

    def require(self, ev: m.Event, **kwargs: Any) -> StudyBuilder:
        return self.criterion(require(ev, **kwargs))

    def exclude(self, ev: m.Event, **kwargs: Any) -> StudyBuilder:
        return self.criterion(exclude(ev, **kwargs))

    def exit_after(self, days: int, collapse_days: int = 0) -> StudyBuilder:
        self._exit = m.Exit(m.ExitKind.FIXED, days, 0, collapse_days)
        return self

    def exit_at_observation_end(self, collapse_days: int = 0) -> StudyBuilder:
        self._exit = m.Exit(m.ExitKind.OBSERVATION_END, 0, 0, collapse_days)
        return self

    def exit_at_exposure_end(
        self, gap_days: int = 0, offset_days: int = 0, collapse_days: int = 0
    ) -> StudyBuilder:
        self._exit = m.Exit(m.ExitKind.EXPOSURE, offset_days, gap_days, collapse_days)
        return self

    # -- analyses ----------------------------------------------------------------------------
    def count(self, name: str, unit: str = "persons", by: Sequence[Any] = ()) -> StudyBuilder:
        self._analyses.append(m.Count(name, m.CountUnit(unit), _by(by)))
        return self

    def outcome(
        self,
        name: str,
        ev: m.Event,
        start: int | None,
        end: int | None,
        by: Sequence[Any] = (),
        rate: bool = False,
    ) -> StudyBuilder:
        self._analyses.append(m.Outcome(name, ev, m.Window(start, end), _by(by), rate))
        return self

    def distribution(
        self,
        name: str,
        of: str,
        ev: m.Event | None = None,
        start: int | None = None,
        end: int | None = None,
        occurrence: str = "all",
        by: Sequence[Any] = (),
    ) -> StudyBuilder:
        self._analyses.append(
            m.Distribution(
                name,
                m.DistributionOf(of),
                ev,
                m.Window(start, end),
                m.Occurrence(occurrence),
                _by(by),
            )
        )
        return self

    def attrition(self, name: str) -> StudyBuilder:
        self._analyses.append(m.Attrition(name))
        return self

    def survival(
        self, name: str, ev: m.Event, start: int, end: int | None, by: Sequence[Any] = ()
    ) -> StudyBuilder:
        self._analyses.append(m.Survival(name, ev, m.Window(start, end), _by(by)))
        return self

    def build(self) -> m.Study:
        if self._entry is None:
            raise m.ModelError("is required", "cohort.entry")
        cohort = m.Cohort(
            self._entry, self._observation, self._demographics, tuple(self._criteria),
            self._exit, self._period, self._qualified,
        )  # fmt: skip
        return m.Study(self.name, cohort, tuple(self._analyses))
