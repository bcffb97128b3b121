"""The query model: what a study means, as frozen, hashable, validated dataclasses.

This is the middle of three layers (spec text -> this model -> engines). Engines import only
this module (and `result.py`); the parser (`parse.py`) and the builder (`builder.py`) produce it.
The serialized model is the wire format between hub and nodes. Every class validates itself in
``__post_init__`` and raises `ModelError` naming the offending field (relative to the class);
the parser prefixes the field path.

Evaluation order of a cohort (the reference engine, `reference.py`, is the executable
definition; `docs/study-language.md` is generated from the spec tests):

1. **Entry events**: every event of ``entry.events`` (union) that matches its domain, concept
   set and event filters (dates, value, unit, value concepts, visit type). Events of persons
   absent from ``person`` are ignored. The index date is the event's start date. With
   ``entry.observation_window`` / ``entry.criteria``, only events passing them (each evaluated with
   the event's own start date as index, see `Entry`) are candidates.
2. **Occurrence**: ``first`` / ``last`` keeps one candidate per person (earliest / latest start
   date; ties broken by the smaller / larger event id, then the smaller / larger concept id);
   ``all`` keeps every candidate. This happens *before* every cohort-level restriction.
3. **Observation**: the index date lies inside one observation period of the person
   (start <= index <= end) with at least ``prior_days`` before it and ``post_days`` after it.
4. **Demographics**: age at index = year(index) - year_of_birth; sex = gender_concept_id;
   year of birth range. All bounds inclusive.
5. **Period**: the index date lies in ``cohort.period`` (inclusive). Unlike ``entry.dates``
   (which filters events before ``occurrence``), the period applies after it: "first ever
   diagnosis, kept if it falls in 2015-2020" (incident cases) versus "first diagnosis in
   2015-2020".
6. **Criteria**, in order, each per entry: an event is *in a window* when its start date minus
   the index date (in days) lies in [start, end], both inclusive, ``None`` = unbounded.
   `Require`: at least ``min_count`` and at most ``max_count`` matching events in the window;
   `Exclude`: no matching event in the window; `AllOf` / `AnyOf`: every / at least one child.
   The entry event itself counts when it matches a criterion's event and day 0 is in its window.
   Then ``qualified_occurrence`` ``first`` / ``last`` keeps each person's first / last entry
   left (same order as ``occurrence``); ``all`` (the default) keeps them all.
7. **Exit** (optional): the entry's exit date (fixed days after index, end of the observation
   period, or end of continuous exposure). When the cohort has ``observation``, the exit date is
   capped at the end of the observation period containing the index. Entries of one person
   whose [index, exit] intervals overlap (or are at most ``collapse_days`` apart) are then
   collapsed into one entry (cohort era): the earliest index, the latest exit, and the first
   entry's attributes. Without an exit, entries are never collapsed.

Event dates: an event's end date is its end date column, or its start date when that is NULL
(or when the domain has no end date, e.g. death).

Analyses run on the final entries. See `result_columns` for the exact columns each produces.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from passerelle.errors import UserError
from passerelle.query.result import ResultColumn


class ModelError(UserError):
    """A model object violates its rules. `field` names the offending field, relative to the
    object (e.g. ``window``), or is empty when the object as a whole is wrong."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field


# --------------------------------------------------------------------------------------------
# Domains: one table mapping each domain to its CDM table and columns.
# --------------------------------------------------------------------------------------------


class Domain(StrEnum):
    """Where an event comes from: one CDM table each (see `DOMAINS`)."""

    CONDITION = "condition"
    DRUG = "drug"
    DRUG_ERA = "drug_era"
    CONDITION_ERA = "condition_era"
    PROCEDURE = "procedure"
    MEASUREMENT = "measurement"
    OBSERVATION = "observation"
    VISIT = "visit"
    DEVICE = "device"
    DEATH = "death"


@dataclass(frozen=True)
class DomainTable:
    """Where a domain's events live in the CDM v5.4 and which column holds what.

    ``id_column`` is None for death (one row per person: the person id breaks ties);
    ``end_column`` None means the event ends on its start date; ``visit_column`` links the event
    to ``visit_occurrence`` (for the visit domain it is its own id); ``value_column`` /
    ``unit_column`` / ``value_concept_column`` exist for measurement and observation.
    """

    table: str
    id_column: str | None
    concept_column: str
    start_column: str
    end_column: str | None
    source_concept_column: str | None
    visit_column: str | None = None
    value_column: str | None = None
    unit_column: str | None = None
    value_concept_column: str | None = None


# fmt: off
DOMAINS: dict[Domain, DomainTable] = {
    Domain.CONDITION: DomainTable(
        "condition_occurrence", "condition_occurrence_id", "condition_concept_id",
        "condition_start_date", "condition_end_date", "condition_source_concept_id",
        visit_column="visit_occurrence_id",
    ),
    Domain.DRUG: DomainTable(
        "drug_exposure", "drug_exposure_id", "drug_concept_id",
        "drug_exposure_start_date", "drug_exposure_end_date", "drug_source_concept_id",
        visit_column="visit_occurrence_id",
    ),
    Domain.DRUG_ERA: DomainTable(
        "drug_era", "drug_era_id", "drug_concept_id",
        "drug_era_start_date", "drug_era_end_date", None,
    ),
    Domain.CONDITION_ERA: DomainTable(
        "condition_era", "condition_era_id", "condition_concept_id",
        "condition_era_start_date", "condition_era_end_date", None,
    ),
    Domain.PROCEDURE: DomainTable(
        "procedure_occurrence", "procedure_occurrence_id", "procedure_concept_id",
        "procedure_date", "procedure_end_date", "procedure_source_concept_id",
        visit_column="visit_occurrence_id",
    ),
    Domain.MEASUREMENT: DomainTable(
        "measurement", "measurement_id", "measurement_concept_id",
        "measurement_date", None, "measurement_source_concept_id",
        visit_column="visit_occurrence_id", value_column="value_as_number",
        unit_column="unit_concept_id", value_concept_column="value_as_concept_id",
    ),
    Domain.OBSERVATION: DomainTable(
        "observation", "observation_id", "observation_concept_id",
        "observation_date", None, "observation_source_concept_id",
        visit_column="visit_occurrence_id", value_column="value_as_number",
        unit_column="unit_concept_id", value_concept_column="value_as_concept_id",
    ),
    Domain.VISIT: DomainTable(
        "visit_occurrence", "visit_occurrence_id", "visit_concept_id",
        "visit_start_date", "visit_end_date", "visit_source_concept_id",
        visit_column="visit_occurrence_id",
    ),
    Domain.DEVICE: DomainTable(
        "device_exposure", "device_exposure_id", "device_concept_id",
        "device_exposure_start_date", "device_exposure_end_date", "device_source_concept_id",
        visit_column="visit_occurrence_id",
    ),
    Domain.DEATH: DomainTable(
        "death", None, "cause_concept_id", "death_date", None, "cause_source_concept_id",
    ),
}
# fmt: on

# Tables a study may read besides the domain tables.
PERSON_TABLE = "person"
OBSERVATION_PERIOD_TABLE = "observation_period"
VISIT_TABLE = "visit_occurrence"
CONCEPT_ANCESTOR_TABLE = "concept_ancestor"


class Occurrence(StrEnum):
    """Which of a person's (or an entry's) matching events to keep: earliest, latest, every."""

    FIRST = "first"
    LAST = "last"
    ALL = "all"


class Sex(IntEnum):
    """OMOP gender concepts (the spec also accepts the names)."""

    MALE = 8507
    FEMALE = 8532


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _ids(value: tuple[int, ...], name: str) -> None:
    if not isinstance(value, tuple):
        raise ModelError("must be a tuple of concept ids", name)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ModelError(f"{v!r} is not a concept id (a non-negative integer)", name)
    if len(set(value)) != len(value):
        raise ModelError("lists a concept twice", name)


@dataclass(frozen=True)
class ConceptSet:
    """Which concepts an event may carry.

    An event matches when its standard concept id is in
    ``expand(concepts) | exact`` minus ``expand(exclude) | exclude_exact``, or when its source
    concept id is in ``source_concepts``. ``expand(x)`` is ``x`` itself plus, when
    ``descendants`` is true, every ``descendant_concept_id`` of ``x`` in ``concept_ancestor``
    (the concept itself is always included, whether or not concept_ancestor lists it).
    ``exact`` / ``exclude_exact`` never take descendants (they let ATLAS sets that mix flags be
    written exactly). Exclusions apply to standard concepts only, not to ``source_concepts``.
    """

    concepts: tuple[int, ...] = ()
    descendants: bool = False
    exclude: tuple[int, ...] = ()
    exact: tuple[int, ...] = ()
    exclude_exact: tuple[int, ...] = ()
    source_concepts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("concepts", "exclude", "exact", "exclude_exact", "source_concepts"):
            _ids(getattr(self, name), name)
        if not isinstance(self.descendants, bool):
            raise ModelError("must be true or false", "descendants")
        if not (self.concepts or self.exact or self.source_concepts):
            raise ModelError("names no concept (give concepts, exact or source_concepts)")
        both = (set(self.concepts) | set(self.exact)) & (
            set(self.exclude) | set(self.exclude_exact)
        )
        if both:
            raise ModelError(f"concept {min(both)} is both included and excluded", "exclude")


@dataclass(frozen=True)
class DateRange:
    """Dates from ``start`` to ``end``, both inclusive; None = unbounded."""

    start: dt.date | None = None
    end: dt.date | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, dt.date) or isinstance(v, dt.datetime)):
                raise ModelError(f"{v!r} is not a date (YYYY-MM-DD)", name)
        if self.start is None and self.end is None:
            raise ModelError("gives neither start nor end")
        if self.start and self.end and self.start > self.end:
            raise ModelError(f"start {self.start} is after end {self.end}")

    def contains(self, day: dt.date) -> bool:
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class ValueRange:
    """Numbers from ``min`` to ``max``; None = unbounded. A NULL value is never in a range.

    Bounds are inclusive unless ``min_exclusive`` / ``max_exclusive`` (strict: value > min,
    value < max). ``outside``: the value lies outside [min, max] (value < min or value > max;
    both bounds given, both inclusive), ATLAS's "not between". A NULL value is never outside
    a range either."""

    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    outside: bool = False

    def __post_init__(self) -> None:
        for name in ("min", "max"):
            v = getattr(self, name)
            if v is not None and not _number(v):
                raise ModelError(f"{v!r} is not a number", name)
        for name in ("min_exclusive", "max_exclusive", "outside"):
            if not isinstance(getattr(self, name), bool):
                raise ModelError("must be true or false", name)
        if self.min is None and self.max is None:
            raise ModelError("gives neither min nor max")
        if self.min_exclusive and self.min is None:
            raise ModelError("an exclusive min needs a min", "min_exclusive")
        if self.max_exclusive and self.max is None:
            raise ModelError("an exclusive max needs a max", "max_exclusive")
        if self.outside and (self.min is None or self.max is None):
            raise ModelError("outside a range needs both min and max", "outside")
        if self.outside and (self.min_exclusive or self.max_exclusive):
            raise ModelError("outside a range takes inclusive bounds", "outside")
        if self.min is not None and self.max is not None:
            if self.min > self.max:
                raise ModelError(f"min {self.min} is above max {self.max}")
            if self.min == self.max and (self.min_exclusive or self.max_exclusive):
                raise ModelError(f"the range ({self.min}, {self.max}) is empty")

    def contains(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.outside:
            assert self.min is not None and self.max is not None  # validated above
            return value < self.min or value > self.max
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            return False
        return self.max is None or (value < self.max if self.max_exclusive else value <= self.max)


@dataclass(frozen=True)
class Window:
    """Days relative to the index date, both ends inclusive, None = unbounded. An event is in
    the window when (event start date - index date) in days lies in [start, end]. Day 0 is the
    index day: ``{start: null, end: -1}`` is "any time before the index day".

    ``observed``: only events whose start date also lies in the observation period containing
    the index date (chosen as for `Observation`) count; an entry whose index lies in no
    observation period sees no event (OHDSI Circe's default for correlated criteria)."""

    start: int | None = None
    end: int | None = None
    observed: bool = False

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ModelError(f"{v!r} is not a whole number of days", name)
        if not isinstance(self.observed, bool):
            raise ModelError("must be true or false", "observed")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ModelError(f"start {self.start} is after end {self.end}")

    def contains(self, days: int) -> bool:
        return (self.start is None or days >= self.start) and (self.end is None or days <= self.end)

    @property
    def bounded(self) -> bool:
        return self.start is not None and self.end is not None


ALWAYS = Window()


@dataclass(frozen=True)
class Event:
    """Rows of one domain's table matching a concept set and optional filters.

    ``concepts`` None = every row of the domain (e.g. any death, any visit). ``dates``: the
    start date lies in the range. ``value``: value_as_number lies in the range (`ValueRange`:
    inclusive, strict or outside; NULL never matches). ``unit``: unit_concept_id is one of these. ``value_concepts``:
    value_as_concept_id is one of these. ``visit_type``: the linked visit_occurrence (by
    visit_occurrence_id; for the visit domain, the visit itself) has one of these
    visit_concept_ids (exact ids, no descendants); an event without a visit never matches.
    """

    domain: Domain
    concepts: ConceptSet | None = None
    dates: DateRange | None = None
    value: ValueRange | None = None
    unit: tuple[int, ...] = ()
    value_concepts: tuple[int, ...] = ()
    visit_type: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.domain, Domain):
            raise ModelError(f"{self.domain!r} is not a domain", "domain")
        info = DOMAINS[self.domain]
        _ids(self.unit, "unit")
        _ids(self.value_concepts, "value_concepts")
        _ids(self.visit_type, "visit_type")
        if self.value is not None and info.value_column is None:
            raise ModelError(f"{self.domain.value} events have no value", "value")
        if self.unit and info.unit_column is None:
            raise ModelError(f"{self.domain.value} events have no unit", "unit")
        if self.value_concepts and info.value_concept_column is None:
            raise ModelError(f"{self.domain.value} events have no value concept", "value_concepts")
        if self.visit_type and info.visit_column is None:
            raise ModelError(f"{self.domain.value} events have no visit", "visit_type")
        if (
            self.concepts is not None
            and self.concepts.source_concepts
            and info.source_concept_column is None
        ):
            raise ModelError(f"{self.domain.value} events have no source concept", "concepts")

    @property
    def table(self) -> DomainTable:
        return DOMAINS[self.domain]


@dataclass(frozen=True)
class Entry:
    """The cohort's entry events: the union of ``events``; ``occurrence`` picks among each
    person's *candidate* events (first / last by start date, or all) before any cohort rule.

    An event row is a candidate when (1) with ``observation_window``, its start date lies in an
    observation period with ``prior_days`` before and ``post_days`` after it (`Observation`,
    the event's start date as index), and (2) with ``criteria``, the criteria attached to an
    entry event the row matches hold for it, evaluated exactly like cohort criteria with the
    row's start date as index (windows relative to it; observed windows in the period
    containing it). ``criteria`` is empty or has one tuple per event (``criteria[i]`` belongs
    to ``events[i]``; an empty tuple always holds); a row matching several entry events is a
    candidate when the criteria of any one of them hold. These are ATLAS's primary-event
    observation window and correlated criteria: the occurrence picks the first / last event
    *with* them."""

    events: tuple[Event, ...]
    occurrence: Occurrence = Occurrence.FIRST
    observation_window: Observation | None = None
    criteria: tuple[tuple[Criterion, ...], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.events, tuple) or not self.events:
            raise ModelError("needs at least one event", "events")
        if not isinstance(self.occurrence, Occurrence):
            raise ModelError(f"{self.occurrence!r} is not first, last or all", "occurrence")
        if self.observation_window is not None and not isinstance(
            self.observation_window, Observation
        ):
            raise ModelError("must be {prior_days, post_days}", "observation_window")
        if not isinstance(self.criteria, tuple) or any(
            not isinstance(c, tuple) for c in self.criteria
        ):
            raise ModelError("must be one tuple of criteria per event", "criteria")
        if self.criteria and len(self.criteria) != len(self.events):
            raise ModelError(
                f"has {len(self.criteria)} criteria lists for {len(self.events)} events",
                "criteria",
            )

    @property
    def filtered(self) -> bool:
        """Whether candidates are filtered before the occurrence pick."""
        return self.observation_window is not None or any(self.criteria)

    def all_criteria(self) -> tuple[Criterion, ...]:
        return tuple(c for cs in self.criteria for c in cs)


@dataclass(frozen=True)
class Observation:
    """The index date lies in one observation period with at least ``prior_days`` days of it
    before the index (period start <= index - prior_days) and ``post_days`` after it
    (period end >= index + post_days). Persons without an observation period never match."""

    prior_days: int = 0
    post_days: int = 0

    def __post_init__(self) -> None:
        for name in ("prior_days", "post_days"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ModelError(f"{v!r} is not a non-negative number of days", name)


@dataclass(frozen=True)
class IntRange:
    """Whole numbers from ``min`` to ``max``, both inclusive; None = unbounded."""

    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        for name in ("min", "max"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ModelError(f"{v!r} is not a whole number", name)
        if self.min is None and self.max is None:
            raise ModelError("gives neither min nor max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ModelError(f"min {self.min} is above max {self.max}")

    def contains(self, value: int | None) -> bool:
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True)
class Demographics:
    """Age at index (year(index) - year_of_birth) in ``age``; gender_concept_id in ``sex``;
    year_of_birth in ``year_of_birth``. A NULL year of birth never matches a range."""

    age: IntRange | None = None
    sex: tuple[int, ...] = ()
    year_of_birth: IntRange | None = None

    def __post_init__(self) -> None:
        _ids(self.sex, "sex")
        if self.age is None and not self.sex and self.year_of_birth is None:
            raise ModelError("restricts nothing (give age, sex or year_of_birth)")


# --------------------------------------------------------------------------------------------
# Criteria
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Require:
    """At least ``min_count`` and at most ``max_count`` (None = no limit) events matching
    ``event`` start in ``window``. Events are rows: two rows on one day count twice."""

    event: Event
    window: Window = ALWAYS
    min_count: int = 1
    max_count: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int):
            raise ModelError(f"{self.min_count!r} is not a whole number", "min_count")
        if self.min_count < 0:
            raise ModelError(f"{self.min_count} is negative", "min_count")
        if self.max_count is not None:
            if isinstance(self.max_count, bool) or not isinstance(self.max_count, int):
                raise ModelError(f"{self.max_count!r} is not a whole number", "max_count")
            if self.max_count < self.min_count:
                raise ModelError(
                    f"max_count {self.max_count} is below min_count {self.min_count}",
                    "max_count",
                )
        _name(self.name)


@dataclass(frozen=True)
class Exclude:
    """No event matching ``event`` starts in ``window``."""

    event: Event
    window: Window = ALWAYS
    name: str | None = None

    def __post_init__(self) -> None:
        _name(self.name)


@dataclass(frozen=True)
class AllOf:
    """Every child criterion holds."""

    criteria: tuple[Criterion, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.criteria, tuple) or not self.criteria:
            raise ModelError("needs at least one criterion", "all_of")
        _name(self.name)


@dataclass(frozen=True)
class AnyOf:
    """At least one child criterion holds."""

    criteria: tuple[Criterion, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.criteria, tuple) or not self.criteria:
            raise ModelError("needs at least one criterion", "any_of")
        _name(self.name)


Criterion = Require | Exclude | AllOf | AnyOf

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,79}$")


def _name(name: str | None, required: bool = False) -> None:
    if name is None:
        if required:
            raise ModelError("is required", "name")
        return
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelError(
            "must be 1-80 letters, digits, spaces, '_', '-' or '.', starting with a letter or "
            "digit",
            "name",
        )


# --------------------------------------------------------------------------------------------
# Exit
# --------------------------------------------------------------------------------------------


class ExitKind(StrEnum):
    """How an entry's exit date is computed (see `Exit`)."""

    FIXED = "fixed"  # index + days
    OBSERVATION_END = "observation_end"  # end of the observation period containing the index
    EXPOSURE = "exposure"  # end of continuous exposure + days
    EVENT_END = "event_end"  # the entry event's end date + days


@dataclass(frozen=True)
class Exit:
    """When an entry leaves the cohort.

    ``fixed``: exit = index + ``days``. ``observation_end``: the end of the observation period
    containing the index (the cohort must have ``observation``). ``exposure``: the person's
    events matching any entry event (all occurrences, with the entry's filters) are merged into
    exposure eras: sorted by start date, an event joins the current era when its start date is
    at most ``gap_days`` days after the era's end (end = max event end date so far); exit = end
    of the era containing the index + ``days``. ``event_end``: the entry event's end date (its
    end column, or its start date when NULL) + ``days``. Then entries of one person whose intervals
    overlap or are at most ``collapse_days`` apart (next index <= exit + collapse_days) are
    collapsed into one.
    """

    kind: ExitKind
    days: int = 0
    gap_days: int = 0
    collapse_days: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ExitKind):
            raise ModelError(f"{self.kind!r} is not an exit kind", "kind")
        for name in ("days", "gap_days", "collapse_days"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ModelError(f"{v!r} is not a non-negative number of days", name)
        if self.kind is not ExitKind.EXPOSURE and self.gap_days:
            raise ModelError("only an exposure exit has gap days", "gap_days")
        if self.kind is ExitKind.OBSERVATION_END and self.days:
            raise ModelError("an observation_end exit takes no days", "days")


# --------------------------------------------------------------------------------------------
# Cohort
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cohort:
    """Entries (one per person unless ``entry.occurrence`` is ``all``) that pass every rule;
    see the module docstring for the order of evaluation. ``qualified_occurrence`` (default
    ``all``) then keeps each person's first / last entry among those that passed every rule
    (ATLAS's qualified / expression limit: "the first qualifying event")."""

    entry: Entry
    observation: Observation | None = None
    demographics: Demographics | None = None
    criteria: tuple[Criterion, ...] = ()
    exit: Exit | None = None
    period: DateRange | None = None
    qualified_occurrence: Occurrence = Occurrence.ALL

    def __post_init__(self) -> None:
        if not isinstance(self.criteria, tuple):
            raise ModelError("must be a list of criteria", "criteria")
        if not isinstance(self.qualified_occurrence, Occurrence):
            raise ModelError(
                f"{self.qualified_occurrence!r} is not first, last or all", "qualified_occurrence"
            )
        if (
            self.exit is not None
            and self.exit.kind is ExitKind.OBSERVATION_END
            and self.observation is None
        ):
            raise ModelError(
                "an observation_end exit needs `observation` (e.g. {prior_days: 0})", "exit"
            )


def attrition_steps(cohort: Cohort) -> tuple[str, ...]:
    """The labels of an attrition table's rows, in order: ``entry`` (persons with an entry
    after the entry's own observation and criteria and ``occurrence``), then ``observation``, ``demographics``, ``period`` (each only when
    the cohort has it), then one per top-level criterion: its name, or ``criteria[i]``."""
    steps = ["entry"]
    if cohort.observation is not None:
        steps.append("observation")
    if cohort.demographics is not None:
        steps.append("demographics")
    if cohort.period is not None:
        steps.append("period")
    for i, c in enumerate(cohort.criteria):
        steps.append(c.name or f"criteria[{i}]")
    return tuple(steps)


# --------------------------------------------------------------------------------------------
# Breakdown dimensions (``by``)
# --------------------------------------------------------------------------------------------


class DimensionKind(StrEnum):
    """A breakdown of an analysis; each comment says where its value comes from."""

    SEX = "sex"  # person.gender_concept_id
    AGE_BAND = "age_band"  # floor(age at index / width) * width
    INDEX_YEAR = "index_year"  # year of the index date
    INDEX_MONTH = "index_month"  # month (1-12) of the index date
    SITE = "site"  # care_site_id of the entry event's visit (NULL without one)
    VISIT_TYPE = "visit_type"  # visit_concept_id of the entry event's visit (NULL without one)
    ENTRY_CONCEPT = "entry_concept"  # the entry event's standard concept id
    CONCEPT_COLUMN = "column"  # a *_concept_id column of person or of the entry event's table


class ColumnSource(StrEnum):
    """The row a concept-column breakdown reads: the person's, or the entry event's."""

    PERSON = "person"
    ENTRY = "entry"


@dataclass(frozen=True)
class Dimension:
    """One breakdown of an analysis. Its value is computed per entry (after collapsing: from
    the first entry of the era). ``width`` is the age band width (AGE_BAND only); ``source`` and
    ``column`` name a concept-valued column (CONCEPT_COLUMN only), output under the column's
    name. A NULL value forms its own group."""

    kind: DimensionKind
    width: int | None = None
    source: ColumnSource | None = None
    column: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, DimensionKind):
            raise ModelError(f"{self.kind!r} is not a breakdown", "kind")
        if self.kind is DimensionKind.AGE_BAND:
            if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
                raise ModelError(f"age band width {self.width!r} is not a positive integer")
        elif self.width is not None:
            raise ModelError("only an age band has a width", "width")
        if self.kind is DimensionKind.CONCEPT_COLUMN:
            if not isinstance(self.source, ColumnSource):
                raise ModelError("a column breakdown needs source person or entry", "source")
            if not isinstance(self.column, str) or not re.fullmatch(
                r"[a-z][a-z0-9_]*_concept_id", self.column
            ):
                raise ModelError(f"{self.column!r} is not a *_concept_id column", "column")
            if self.source is ColumnSource.PERSON and not _has_column(PERSON_TABLE, self.column):
                raise ModelError(f"person has no column {self.column}", "column")
        elif self.source is not None or self.column is not None:
            raise ModelError("only a column breakdown names a column", "column")

    @property
    def output_name(self) -> str:
        if self.kind is DimensionKind.CONCEPT_COLUMN:
            return str(self.column)
        return self.kind.value


def _has_column(table: str, column: str) -> bool:
    from passerelle.cdm.schema import TABLES_BY_NAME

    t = TABLES_BY_NAME.get(table)
    return t is not None and any(c.name == column for c in t.columns)


SEX = Dimension(DimensionKind.SEX)
INDEX_YEAR = Dimension(DimensionKind.INDEX_YEAR)
INDEX_MONTH = Dimension(DimensionKind.INDEX_MONTH)
SITE = Dimension(DimensionKind.SITE)
VISIT_TYPE = Dimension(DimensionKind.VISIT_TYPE)
ENTRY_CONCEPT = Dimension(DimensionKind.ENTRY_CONCEPT)


def AgeBand(width: int) -> Dimension:
    return Dimension(DimensionKind.AGE_BAND, width=width)


def _by(by: tuple[Dimension, ...]) -> None:
    if not isinstance(by, tuple):
        raise ModelError("must be a list of breakdowns", "by")
    names = [d.output_name for d in by]
    for n in names:
        if names.count(n) > 1:
            raise ModelError(f"breaks down by {n} twice", "by")


# --------------------------------------------------------------------------------------------
# Analyses
# --------------------------------------------------------------------------------------------


class CountUnit(StrEnum):
    """What a `Count` counts: distinct persons, or entries (after collapsing)."""

    PERSONS = "persons"
    ENTRIES = "entries"


@dataclass(frozen=True)
class Count:
    """Distinct persons, or entries, per group of ``by``. A person with entries in two groups
    counts in both. Without ``by`` there is always exactly one row (0 for an empty cohort);
    with ``by`` only groups that have an entry appear."""

    name: str
    unit: CountUnit = CountUnit.PERSONS
    by: tuple[Dimension, ...] = ()

    def __post_init__(self) -> None:
        _name(self.name, required=True)
        if not isinstance(self.unit, CountUnit):
            raise ModelError(f"{self.unit!r} is not persons or entries", "count")
        _by(self.by)


@dataclass(frozen=True)
class Outcome:
    """Per group: ``persons`` (distinct persons with an entry), ``outcome_persons`` (distinct
    persons with at least one entry that has an ``event`` starting in ``window`` and, when the
    cohort has an exit, on or before the exit date) and ``proportion`` = outcome_persons /
    persons.

    With ``rate``: each entry's time at risk runs from index + window.start to the earliest of
    index + window.end, its exit date and its first outcome event in that span (inclusive, in
    days: last - first + 1; 0 when empty). ``person_days`` sums it, ``outcome_entries`` counts
    entries with an outcome in their time at risk, and ``incidence_per_1000py`` =
    outcome_entries / (person_days / 365.25) * 1000 (NULL when person_days is 0). A rate needs
    window.start and either window.end or a cohort exit.
    """

    name: str
    event: Event
    window: Window
    by: tuple[Dimension, ...] = ()
    rate: bool = False

    def __post_init__(self) -> None:
        _name(self.name, required=True)
        _by(self.by)
        if not isinstance(self.rate, bool):
            raise ModelError("must be true or false", "rate")
        if self.rate and self.window.start is None:
            raise ModelError("a rate needs a window start", "window")


class DistributionOf(StrEnum):
    """Which numbers a `Distribution` summarises (see `Distribution`)."""

    VALUE = "value"  # value_as_number of events in a window
    AGE = "age"  # age at index of each entry
    DAYS_TO_OUTCOME = "days_to_outcome"  # days from index to the first outcome in a window


@dataclass(frozen=True)
class Distribution:
    """Summary of numbers, per group: ``n`` (count), ``mean``, ``sd`` (sample, n-1; NULL when
    n < 2), ``min``, ``p10``, ``p25``, ``median``, ``p75``, ``p90``, ``max``.

    Percentiles use linear interpolation between closest ranks (type 7, as DuckDB
    ``quantile_cont``, PostgreSQL ``percentile_cont``, Spark ``percentile``): for sorted
    values x[0..n-1] and fraction p, h = (n - 1) * p, result = x[floor h] + (h - floor h) *
    (x[floor h + 1] - x[floor h]).

    ``value``: value_as_number (non-NULL) of every ``event`` starting in ``window`` of each
    entry (``occurrence`` first / last keeps one per entry: earliest / latest start date, ties by
    event id). ``age``: one number per entry. ``days_to_outcome``: for each entry with an
    ``event`` starting in ``window`` (and, with an exit, on or before it), the days from index
    to the first such event. Without ``by`` there is one row (n = 0 and NULL statistics when no
    number); with ``by`` only groups with a number appear.
    """

    name: str
    of: DistributionOf
    event: Event | None = None
    window: Window = ALWAYS
    occurrence: Occurrence = Occurrence.ALL
    by: tuple[Dimension, ...] = ()

    def __post_init__(self) -> None:
        _name(self.name, required=True)
        _by(self.by)
        if not isinstance(self.of, DistributionOf):
            raise ModelError(f"{self.of!r} is not value, age or days_to_outcome", "of")
        if self.of is DistributionOf.AGE:
            if self.event is not None:
                raise ModelError("an age distribution takes no event", "event")
        elif self.event is None:
            raise ModelError(f"a {self.of.value} distribution needs an event", "event")
        if (
            self.of is DistributionOf.VALUE
            and self.event is not None
            and self.event.table.value_column is None
        ):
            raise ModelError(f"{self.event.domain.value} events have no value", "event")
        if self.occurrence is not Occurrence.ALL and self.of is not DistributionOf.VALUE:
            raise ModelError("only a value distribution picks an occurrence", "occurrence")


@dataclass(frozen=True)
class Attrition:
    """Persons left after each step of `attrition_steps`, in order: one row per step
    (``step`` from 0, ``criterion`` label, ``persons``). Each step applies on top of the
    previous ones; ``entry`` counts persons after ``occurrence``."""

    name: str

    def __post_init__(self) -> None:
        _name(self.name, required=True)


@dataclass(frozen=True)
class Survival:
    """Kaplan-Meier estimate of time to the first ``event`` per entry, per group.

    Each entry's follow-up runs from index + window.start to the earlier of index + window.end
    and its exit date; entries whose follow-up is empty are left out. Its time is the days from
    index to the first event in the follow-up (an event) or to the end of the follow-up
    (censored). One row per distinct time t (ascending): ``at_risk`` = entries with time >= t,
    ``events`` and ``censored`` at t, ``survival`` = product over times <= t of
    (1 - events / at_risk). Needs window.start and either window.end or a cohort exit.
    """

    name: str
    event: Event
    window: Window
    by: tuple[Dimension, ...] = ()

    def __post_init__(self) -> None:
        _name(self.name, required=True)
        _by(self.by)
        if self.window.start is None:
            raise ModelError("survival needs a window start", "window")


Analysis = Count | Outcome | Distribution | Attrition | Survival


# --------------------------------------------------------------------------------------------
# Study
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Study:
    """A named cohort and the analyses to run on it (analysis names are unique)."""

    name: str
    cohort: Cohort
    analyses: tuple[Analysis, ...] = field(default=())

    def __post_init__(self) -> None:
        _name(self.name, required=True)
        if not isinstance(self.analyses, tuple) or not self.analyses:
            raise ModelError("needs at least one analysis", "analyses")
        seen: set[str] = set()
        for i, a in enumerate(self.analyses):
            if a.name in seen:
                raise ModelError(f"analysis name {a.name!r} is used twice", f"analyses[{i}].name")
            seen.add(a.name)
            for j, d in enumerate(getattr(a, "by", ())):
                if d.kind is DimensionKind.CONCEPT_COLUMN and d.source is ColumnSource.ENTRY:
                    for e in self.cohort.entry.events:
                        if not _has_column(e.table.table, str(d.column)):
                            raise ModelError(
                                f"{e.table.table} has no column {d.column}",
                                f"analyses[{i}].by[{j}]",
                            )
            needs_bound = isinstance(a, Survival) or (isinstance(a, Outcome) and a.rate)
            if (
                needs_bound
                and isinstance(a, Survival | Outcome)
                and a.window.end is None
                and self.cohort.exit is None
            ):
                raise ModelError(
                    "needs a window end or a cohort exit to bound the time at risk",
                    f"analyses[{i}].window",
                )


# --------------------------------------------------------------------------------------------
# Result columns: what each analysis produces (every engine must produce exactly these).
# --------------------------------------------------------------------------------------------

DISTRIBUTION_STATISTICS = ("mean", "sd", "min", "p10", "p25", "median", "p75", "p90", "max")
PERCENTILES = {"p10": 0.10, "p25": 0.25, "median": 0.50, "p75": 0.75, "p90": 0.90}


def dimension_column(d: Dimension) -> ResultColumn:
    return ResultColumn(d.output_name, "dimension", "integer")


def result_columns(analysis: Analysis) -> tuple[ResultColumn, ...]:
    """The columns of an analysis's result table, in order.

    count -> (by..., persons | entries); outcome -> (by..., persons, outcome_persons,
    proportion[, person_days, outcome_entries, incidence_per_1000py]); distribution ->
    (by..., n, mean, sd, min, p10, p25, median, p75, p90, max); attrition -> (step, criterion,
    persons); survival -> (by..., time_days, at_risk, events, censored, survival).
    """
    by = tuple(dimension_column(d) for d in getattr(analysis, "by", ()))
    if isinstance(analysis, Count):
        return (*by, ResultColumn(analysis.unit.value, "count"))
    if isinstance(analysis, Outcome):
        cols: tuple[ResultColumn, ...] = (
            ResultColumn("persons", "count"),
            ResultColumn("outcome_persons", "count"),
            ResultColumn("proportion", "statistic", "number"),
        )
        if analysis.rate:
            cols += (
                ResultColumn("person_days", "person_time"),
                ResultColumn("outcome_entries", "count"),
                ResultColumn("incidence_per_1000py", "statistic", "number"),
            )
        return (*by, *cols)
    if isinstance(analysis, Distribution):
        stats = tuple(ResultColumn(s, "statistic", "number") for s in DISTRIBUTION_STATISTICS)
        return (*by, ResultColumn("n", "count"), *stats)
    if isinstance(analysis, Attrition):
        return (
            ResultColumn("step", "dimension"),
            ResultColumn("criterion", "dimension", "string"),
            ResultColumn("persons", "count"),
        )
    if isinstance(analysis, Survival):
        return (
            *by,
            ResultColumn("time_days", "dimension"),
            ResultColumn("at_risk", "count"),
            ResultColumn("events", "count"),
            ResultColumn("censored", "count"),
            ResultColumn("survival", "statistic", "number"),
        )
    raise ModelError(f"{type(analysis).__name__} is not an analysis")


def analysis_kind(analysis: Analysis) -> str:
    """The ``analysis`` field of an AggregateTable: count | outcome | distribution | ..."""
    return {
        Count: "count",
        Outcome: "outcome",
        Distribution: "distribution",
        Attrition: "attrition",
        Survival: "survival",
    }[type(analysis)]


def walk_events(study: Study) -> tuple[Event, ...]:
    """Every event the study reads (entry, criteria, exit, analyses), in spec order."""
    out: list[Event] = list(study.cohort.entry.events)

    def crit(c: Criterion) -> None:
        if isinstance(c, (Require, Exclude)):
            out.append(c.event)
        else:
            for child in c.criteria:
                crit(child)

    for c in study.cohort.entry.all_criteria() + study.cohort.criteria:
        crit(c)
    for a in study.analyses:
        ev = getattr(a, "event", None)
        if ev is not None:
            out.append(ev)
    return tuple(out)


def walk_windows(study: Study) -> tuple[Window, ...]:
    """Every window of the study's criteria and analyses, in spec order."""
    out: list[Window] = []

    def crit(c: Criterion) -> None:
        if isinstance(c, (Require, Exclude)):
            out.append(c.window)
        else:
            for child in c.criteria:
                crit(child)

    for c in study.cohort.entry.all_criteria() + study.cohort.criteria:
        crit(c)
    for a in study.analyses:
        w = getattr(a, "window", None)
        if w is not None:
            out.append(w)
    return tuple(out)


def tables_needed(study: Study) -> tuple[str, ...]:
    """The CDM tables a study reads (sorted)."""
    tables = {PERSON_TABLE}
    events = walk_events(study)
    for e in events:
        tables.add(e.table.table)
        if e.concepts is not None and e.concepts.descendants:
            tables.add(CONCEPT_ANCESTOR_TABLE)
        if e.visit_type:
            tables.add(VISIT_TABLE)
    c = study.cohort
    if c.observation is not None or c.entry.observation_window is not None or c.exit is not None:
        tables.add(OBSERVATION_PERIOD_TABLE)
    if any(w.observed for w in walk_windows(study)):
        tables.add(OBSERVATION_PERIOD_TABLE)
    for a in study.analyses:
        for d in getattr(a, "by", ()):
            if d.kind in (DimensionKind.SITE, DimensionKind.VISIT_TYPE):
                tables.add(VISIT_TABLE)
    return tuple(sorted(tables))


# MODEL-READY
