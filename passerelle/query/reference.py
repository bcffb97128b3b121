"""The in-memory reference engine: plain Python that *defines* what a study means.

Every SQL engine is tested against it (spec tests, hypothesis-generated studies). It reads
CDM rows as dicts (column names lower case) and follows `model.py`'s evaluation order. The
edge cases it decides, documented here and in docs/study-language.md:

- An event row with a NULL person_id or a NULL start date never matches anything. Events of
  persons absent from ``person`` are ignored everywhere (entries, criteria, outcomes).
- An event's end date is its end date column, or its start date when that is NULL or the
  domain has none (death, measurement, observation).
- A row matching several entry events is one entry (rows are matched, not events counted).
- ``occurrence: first`` keeps the row with the smallest key (start date, domain name, event
  id, concept id), ``last`` the largest; rows equal on all of these are interchangeable.
  Death rows use the person id as their event id.
- Entry observation window and entry criteria are checked per entry event (its start date as
  index) before ``occurrence``; ``qualified_occurrence`` picks among the entries left after
  every rule, with the same ordering key.
- Observation: among the periods containing the index date (start <= index <= end), the one
  with the earliest start (then the latest end) is *the* period; ``prior_days``/``post_days``
  are checked on it and an exit is capped at its end. A person without one never passes.
- Age at index = year(index) - year_of_birth (NULL year of birth: NULL age, fails any age
  rule, and falls in the NULL age band).
- A window is in days from the index date: an event on the index day is at day 0.
- Statistics are floats; a proportion or incidence with a zero denominator is NULL.
"""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from passerelle.query import model as m
from passerelle.query.result import AggregateTable, StudyResult

Row = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Ev:
    """One matching event row."""

    person: int
    start: dt.date
    end: dt.date
    key: tuple[Any, ...]  # ordering key for first/last
    domain: m.Domain
    row: Mapping[str, Any] = field(compare=False, hash=False)

    @property
    def concept(self) -> Any:
        return self.row.get(m.DOMAINS[self.domain].concept_column)


@dataclass
class Entry:
    person: int
    index: dt.date
    event: Ev
    exit: dt.date | None = None
    obs_end: dt.date | None = None


def _date(v: Any) -> dt.date | None:
    if v is None or v == "":
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v)[:10])


def _normalise(rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    out = []
    for r in rows:
        row = {}
        for k, v in r.items():
            k = k.lower()
            if k.endswith("_date") and v is not None:
                v = _date(v)
            elif hasattr(v, "as_integer_ratio") and not isinstance(v, (int, float, bool)):
                v = float(v)  # Decimal from PostgreSQL
            row[k] = v
        out.append(row)
    return out


class ReferenceEngine:
    """Executes a Study over CDM tables held in memory (fine for test-sized data)."""

    name = "reference"

    def __init__(self, data: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        self.data: dict[str, list[Row]] = {t.lower(): _normalise(rows) for t, rows in data.items()}
        self.persons: dict[int, Row] = {
            r["person_id"]: r
            for r in self.data.get(m.PERSON_TABLE, [])
            if r.get("person_id") is not None
        }
        self.visits: dict[Any, Row] = {
            r["visit_occurrence_id"]: r
            for r in self.data.get(m.VISIT_TABLE, [])
            if r.get("visit_occurrence_id") is not None
        }
        self.periods: dict[int, list[tuple[dt.date, dt.date]]] = defaultdict(list)
        for r in self.data.get(m.OBSERVATION_PERIOD_TABLE, []):
            s, e = r.get("observation_period_start_date"), r.get("observation_period_end_date")
            if r.get("person_id") is not None and s is not None and e is not None:
                self.periods[r["person_id"]].append((s, e))
        for periods in self.periods.values():
            periods.sort(key=lambda p: (p[0], -p[1].toordinal()))
        self.descendants: dict[int, set[int]] = defaultdict(set)
        for r in self.data.get(m.CONCEPT_ANCESTOR_TABLE, []):
            self.descendants[r["ancestor_concept_id"]].add(r["descendant_concept_id"])
        self._events: dict[m.Event, list[Ev]] = {}
        self._by_person: dict[m.Event, dict[int, list[Ev]]] = {}
        self._matches: dict[m.Event, set[int]] = {}

    @classmethod
    def from_store(cls, store: Any, study: m.Study | None = None,
                   tables: Sequence[str] | None = None) -> ReferenceEngine:  # fmt: skip
        """Load the tables `study` needs (or `tables`) from a CDM store."""
        if tables is None:
            tables = m.tables_needed(study) if study is not None else _ALL_TABLES
        have = store.existing_tables()
        data: dict[str, list[Row]] = {}
        for t in tables:
            if t not in have:
                data[t] = []
                continue
            cols = (
                "ancestor_concept_id, descendant_concept_id"
                if t == m.CONCEPT_ANCESTOR_TABLE
                else "*"
            )
            res = store.query(f"SELECT {cols} FROM {store.qualified(t)}")
            names = [c.lower() for c in res.columns]
            data[t] = [dict(zip(names, r, strict=True)) for r in res.rows]
        return cls(data)

    # -- events ------------------------------------------------------------------------------
    def expand(self, ids: Iterable[int], descendants: bool) -> set[int]:
        out = set(ids)
        if descendants:
            for i in list(out):
                out |= self.descendants.get(i, set())
        return out

    def events(self, event: m.Event) -> list[Ev]:
        """Every row matching `event`, of persons in ``person``."""
        if event in self._events:
            return self._events[event]
        info = event.table
        cs = event.concepts
        include: set[int] = set()
        exclude: set[int] = set()
        source: set[int] = set()
        if cs is not None:
            include = self.expand(cs.concepts, cs.descendants) | set(cs.exact)
            exclude = self.expand(cs.exclude, cs.descendants) | set(cs.exclude_exact)
            source = set(cs.source_concepts)
        out = []
        for row in self.data.get(info.table, []):
            person, start = row.get("person_id"), row.get(info.start_column)
            if person is None or start is None or person not in self.persons:
                continue
            if cs is not None:
                c = row.get(info.concept_column)
                std = c in include and c not in exclude
                src = bool(source) and _get(row, info.source_concept_column) in source
                if not (std or src):
                    continue
            if event.dates is not None and not event.dates.contains(start):
                continue
            if event.value is not None and not event.value.contains(_get(row, info.value_column)):
                continue
            if event.unit and _get(row, info.unit_column) not in event.unit:
                continue
            if (
                event.value_concepts
                and _get(row, info.value_concept_column) not in event.value_concepts
            ):
                continue
            if event.visit_type:
                visit = self.visits.get(_get(row, info.visit_column))
                if visit is None or visit.get("visit_concept_id") not in event.visit_type:
                    continue
            end = row.get(info.end_column) if info.end_column else None
            ident = row.get(info.id_column) if info.id_column else person
            key = (
                start,
                event.domain.value,
                _nulls_last(ident),
                _nulls_last(row.get(info.concept_column)),
            )
            out.append(Ev(person, start, end or start, key, event.domain, row))
        self._events[event] = out
        return out

    def by_person(self, event: m.Event) -> dict[int, list[Ev]]:
        """Matching events per person, sorted by start date."""
        if event not in self._by_person:
            groups: dict[int, list[Ev]] = defaultdict(list)
            for e in self.events(event):
                groups[e.person].append(e)
            for evs in groups.values():
                evs.sort(key=lambda e: e.key)
            self._by_person[event] = groups
        return self._by_person[event]

    def in_window(self, event: m.Event, entry: Entry, window: m.Window,
                  until: dt.date | None = None) -> list[Ev]:  # fmt: skip
        """The person's `event` rows starting in `window` (and on or before `until`)."""
        evs = self.by_person(event).get(entry.person, [])
        starts = [e.start for e in evs]
        lo = (
            0
            if window.start is None
            else bisect_left(starts, entry.index + dt.timedelta(window.start))
        )
        hi_date = None if window.end is None else entry.index + dt.timedelta(window.end)
        if until is not None:
            hi_date = until if hi_date is None else min(hi_date, until)
        if window.observed:
            p = self.period(entry.person, entry.index)
            if p is None:
                return []
            lo = max(lo, bisect_left(starts, p[0]))
            hi_date = p[1] if hi_date is None else min(hi_date, p[1])
        hi = len(evs) if hi_date is None else bisect_right(starts, hi_date)
        return evs[lo:hi]

    # -- cohort ------------------------------------------------------------------------------
    def entry_events(self, entry: m.Entry) -> list[Ev]:
        seen: set[int] = set()
        out = []
        for ev in entry.events:
            for e in self.events(ev):
                if id(e.row) not in seen:
                    seen.add(id(e.row))
                    out.append(e)
        return out

    def period(self, person: int, day: dt.date) -> tuple[dt.date, dt.date] | None:
        for s, e in self.periods.get(person, []):
            if s <= day <= e:
                return s, e
        return None

    def age(self, entry: Entry) -> int | None:
        yob = self.persons[entry.person].get("year_of_birth")
        return None if yob is None else entry.index.year - int(yob)

    def candidates(self, entry: m.Entry) -> list[Ev]:
        """The entry events passing the entry's own observation and criteria (`model.Entry`)."""
        evs = self.entry_events(entry)
        if entry.observation_window is not None:
            o = entry.observation_window
            evs = [e for e in evs if self.observed(Entry(e.person, e.start, e), o)]
        if any(entry.criteria):
            kept = []
            for e in evs:
                en = Entry(e.person, e.start, e)
                if any(
                    all(self.holds(c, en) for c in crits)
                    for ev, crits in zip(entry.events, entry.criteria, strict=True)
                    if id(e.row) in self.matches(ev)
                ):
                    kept.append(e)
            evs = kept
        return evs

    def matches(self, event: m.Event) -> set[int]:
        """The rows (by identity) matching `event`."""
        if event not in self._matches:
            self._matches[event] = {id(e.row) for e in self.events(event)}
        return self._matches[event]

    def observed(self, en: Entry, o: m.Observation) -> bool:
        """Whether the entry's index lies in its observation period with `o`'s days around it
        (and then remember the period's end)."""
        p = self.period(en.person, en.index)
        if p and (en.index - p[0]).days >= o.prior_days and (p[1] - en.index).days >= o.post_days:
            en.obs_end = p[1]
            return True
        return False

    def steps(self, cohort: m.Cohort) -> list[tuple[str, list[Entry]]]:
        """The entries left after each attrition step (labels from `attrition_steps`)."""
        chosen = _pick(self.candidates(cohort.entry), cohort.entry.occurrence, lambda e: e)
        entries = [Entry(e.person, e.start, e) for e in chosen]
        labels = iter(m.attrition_steps(cohort))
        out = [(next(labels), entries)]

        if cohort.observation is not None:
            o = cohort.observation
            entries = [en for en in entries if self.observed(en, o)]
            out.append((next(labels), entries))
        if cohort.demographics is not None:
            d = cohort.demographics
            entries = [en for en in entries if self._demographics(d, en)]
            out.append((next(labels), entries))
        if cohort.period is not None:
            entries = [en for en in entries if cohort.period.contains(en.index)]
            out.append((next(labels), entries))
        for c in cohort.criteria:
            entries = [en for en in entries if self.holds(c, en)]
            out.append((next(labels), entries))
        return out

    def _demographics(self, d: m.Demographics, en: Entry) -> bool:
        person = self.persons[en.person]
        if d.sex and person.get("gender_concept_id") not in d.sex:
            return False
        if d.age is not None and not d.age.contains(self.age(en)):
            return False
        yob = person.get("year_of_birth")
        return d.year_of_birth is None or d.year_of_birth.contains(
            None if yob is None else int(yob)
        )

    def holds(self, c: m.Criterion, en: Entry) -> bool:
        if isinstance(c, m.Require):
            n = len(self.in_window(c.event, en, c.window))
            return n >= c.min_count and (c.max_count is None or n <= c.max_count)
        if isinstance(c, m.Exclude):
            return not self.in_window(c.event, en, c.window)
        if isinstance(c, m.AllOf):
            return all(self.holds(x, en) for x in c.criteria)
        return any(self.holds(x, en) for x in c.criteria)

    def cohort(self, cohort: m.Cohort) -> list[Entry]:
        """The final entries: after every rule and ``qualified_occurrence``, with exits,
        collapsed into eras."""
        entries = _pick(self.steps(cohort)[-1][1], cohort.qualified_occurrence, lambda en: en.event)
        ex = cohort.exit
        if ex is None:
            return entries
        for en in entries:
            exit_: dt.date
            if ex.kind is m.ExitKind.FIXED:
                exit_ = en.index + dt.timedelta(ex.days)
            elif ex.kind is m.ExitKind.OBSERVATION_END:
                # model.Cohort: this exit needs `observation`, whose step set every obs_end
                assert en.obs_end is not None
                exit_ = en.obs_end
            elif ex.kind is m.ExitKind.EVENT_END:
                exit_ = en.event.end + dt.timedelta(ex.days)
            else:
                exit_ = self._era_end(cohort.entry, en, ex.gap_days) + dt.timedelta(ex.days)
            if cohort.observation is not None and en.obs_end is not None:
                exit_ = min(exit_, en.obs_end)
            en.exit = exit_
        return _collapse(entries, ex.collapse_days)

    def _era_end(self, entry: m.Entry, en: Entry, gap_days: int) -> dt.date:
        """End of the exposure era containing the entry's index (see `model.Exit`)."""
        rows = {id(e.row): e for ev in entry.events for e in self.by_person(ev).get(en.person, [])}
        evs = sorted(rows.values(), key=lambda e: e.key)
        gap = dt.timedelta(gap_days)
        era_start: dt.date | None = None
        era_end: dt.date | None = None
        for e in evs:
            if era_end is None or e.start > era_end + gap:
                # era_start and era_end are always set together
                if (
                    era_start is not None
                    and era_end is not None
                    and era_start <= en.index <= era_end
                ):
                    return era_end
                era_start, era_end = e.start, e.end
            else:
                era_end = max(era_end, e.end)
        return era_end if era_end is not None else en.index

    # -- analyses ----------------------------------------------------------------------------
    def execute(self, study: m.Study) -> StudyResult:
        entries = self.cohort(study.cohort)
        tables = []
        for a in study.analyses:
            rows = self.analysis(a, study.cohort, entries)
            tables.append(AggregateTable(a.name, m.analysis_kind(a), m.result_columns(a), rows))
        return StudyResult(study.name, self.name, tables)

    def dims(self, by: tuple[m.Dimension, ...], en: Entry) -> tuple[Any, ...]:
        return tuple(self.dim(d, en) for d in by)

    def dim(self, d: m.Dimension, en: Entry) -> Any:
        k = d.kind
        if k is m.DimensionKind.SEX:
            return self.persons[en.person].get("gender_concept_id")
        if k is m.DimensionKind.AGE_BAND:
            age = self.age(en)
            assert d.width is not None  # model.Dimension: an age band has a width
            return None if age is None else (age // d.width) * d.width
        if k is m.DimensionKind.INDEX_YEAR:
            return en.index.year
        if k is m.DimensionKind.INDEX_MONTH:
            return en.index.month
        if k in (m.DimensionKind.SITE, m.DimensionKind.VISIT_TYPE):
            col = m.DOMAINS[en.event.domain].visit_column
            visit = self.visits.get(en.event.row.get(col)) if col else None
            if visit is None:
                return None
            return visit.get("care_site_id" if k is m.DimensionKind.SITE else "visit_concept_id")
        if k is m.DimensionKind.ENTRY_CONCEPT:
            return en.event.concept
        row = self.persons[en.person] if d.source is m.ColumnSource.PERSON else en.event.row
        return row.get(str(d.column))

    def analysis(
        self, a: m.Analysis, cohort: m.Cohort, entries: list[Entry]
    ) -> list[tuple[Any, ...]]:
        if isinstance(a, m.Count):
            return self.count(a, entries)
        if isinstance(a, m.Outcome):
            return self.outcome(a, entries)
        if isinstance(a, m.Distribution):
            return self.distribution(a, entries)
        if isinstance(a, m.Attrition):
            return [(i, label, len({en.person for en in ens}))
                    for i, (label, ens) in enumerate(self.steps(cohort))]  # fmt: skip
        return self.survival(a, entries)

    def count(self, a: m.Count, entries: list[Entry]) -> list[tuple[Any, ...]]:
        groups: dict[tuple[Any, ...], list[Entry]] = defaultdict(list)
        for en in entries:
            groups[self.dims(a.by, en)].append(en)
        if not a.by:
            groups.setdefault((), [])
        persons = a.unit is m.CountUnit.PERSONS
        return [
            (*g, len({en.person for en in ens}) if persons else len(ens))
            for g, ens in groups.items()
        ]

    def _tar(self, window: m.Window, en: Entry) -> tuple[dt.date, dt.date | None]:
        start = en.index + dt.timedelta(window.start or 0)
        end = None if window.end is None else en.index + dt.timedelta(window.end)
        if en.exit is not None:
            end = en.exit if end is None else min(end, en.exit)
        return start, end

    def outcome(self, a: m.Outcome, entries: list[Entry]) -> list[tuple[Any, ...]]:
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        if not a.by:
            groups[()] = _outcome_acc()
        for en in entries:
            acc = groups.setdefault(self.dims(a.by, en), _outcome_acc())
            acc["persons"].add(en.person)
            hits = self.in_window(a.event, en, a.window, until=en.exit)
            if hits:
                acc["outcome"].add(en.person)
            if a.rate:
                start, end = self._tar(a.window, en)
                assert end is not None  # validated: window end or exit
                if hits:
                    acc["entries"] += 1
                    end = hits[0].start
                acc["days"] += max(0, (end - start).days + 1)
        rows = []
        for g, acc in groups.items():
            n, k = len(acc["persons"]), len(acc["outcome"])
            row = (*g, n, k, k / n if n else None)
            if a.rate:
                days = acc["days"]
                row += (days, acc["entries"], acc["entries"] * 365250 / days if days else None)
            rows.append(row)
        return rows

    def distribution(self, a: m.Distribution, entries: list[Entry]) -> list[tuple[Any, ...]]:
        groups: dict[tuple[Any, ...], list[float]] = defaultdict(list)
        if not a.by:
            groups[()] = []
        for en in entries:
            values: list[Any]
            if a.of is m.DistributionOf.AGE:
                values = [self.age(en)]
            elif a.of is m.DistributionOf.DAYS_TO_OUTCOME:
                assert a.event is not None  # model.Distribution: only `age` has no event
                hits = self.in_window(a.event, en, a.window, until=en.exit)
                values = [(hits[0].start - en.index).days] if hits else []
            else:
                assert a.event is not None  # model.Distribution: only `age` has no event
                col = a.event.table.value_column
                assert col is not None  # model.Distribution: a value event has a value column
                hits = [
                    e for e in self.in_window(a.event, en, a.window) if e.row.get(col) is not None
                ]
                if hits and a.occurrence is not m.Occurrence.ALL:
                    key = lambda e, c=col: (e.key, e.row.get(c))  # noqa: E731
                    hits = [
                        min(hits, key=key)
                        if a.occurrence is m.Occurrence.FIRST
                        else max(hits, key=key)
                    ]
                values = [e.row.get(col) for e in hits]
            values = [float(v) for v in values if v is not None]
            if values:
                groups[self.dims(a.by, en)].extend(values)
        return [(*g, *summarise(vs)) for g, vs in groups.items()]

    def survival(self, a: m.Survival, entries: list[Entry]) -> list[tuple[Any, ...]]:
        groups: dict[tuple[Any, ...], list[tuple[int, bool]]] = defaultdict(list)
        for en in entries:
            start, end = self._tar(a.window, en)
            assert end is not None
            if end < start:
                continue
            hits = self.in_window(a.event, en, a.window, until=en.exit)
            if hits:
                groups[self.dims(a.by, en)].append(((hits[0].start - en.index).days, True))
            else:
                groups[self.dims(a.by, en)].append(((end - en.index).days, False))
        rows: list[tuple[Any, ...]] = []
        for g, times in groups.items():
            rows.extend((*g, *step) for step in kaplan_meier(times))
        return rows


def _pick(items: list[T], occ: m.Occurrence, event: Callable[[T], Ev]) -> list[T]:
    """`occ` of each person's items: all of them, or the one whose event has the smallest
    (first) / largest (last) ordering key."""
    if occ is m.Occurrence.ALL:
        return items
    best: dict[int, T] = {}
    for it in items:
        e = event(it)
        b = best.get(e.person)
        if b is None or (
            e.key < event(b).key if occ is m.Occurrence.FIRST else e.key > event(b).key
        ):
            best[e.person] = it
    return list(best.values())


def _outcome_acc() -> dict[str, Any]:
    return {"persons": set(), "outcome": set(), "entries": 0, "days": 0}


def _get(row: Mapping[str, Any], column: str | None) -> Any:
    """``row[column]``, or None when the domain has no such column (or the row no value)."""
    return None if column is None else row.get(column)


def _nulls_last(v: Any) -> tuple[bool, Any]:
    return (v is None, 0 if v is None else v)


def _collapse(entries: list[Entry], pad: int) -> list[Entry]:
    by_person: dict[int, list[Entry]] = defaultdict(list)
    for en in entries:
        by_person[en.person].append(en)
    out = []
    for ens in by_person.values():
        ens.sort(key=lambda e: (e.index, e.exit, e.event.key))
        cur = ens[0]
        for nxt in ens[1:]:
            assert cur.exit is not None and nxt.exit is not None  # set by `cohort` before this
            if nxt.index <= cur.exit + dt.timedelta(pad):
                if nxt.exit > cur.exit:
                    cur = Entry(cur.person, cur.index, cur.event, nxt.exit, cur.obs_end)
            else:
                out.append(cur)
                cur = nxt
        out.append(cur)
    return out


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (type 7; quantile_cont / percentile_cont)."""
    h = (len(sorted_values) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def summarise(values: Sequence[float]) -> tuple[Any, ...]:
    """(n, mean, sd, min, p10, p25, median, p75, p90, max) as `model.Distribution` defines."""
    n = len(values)
    if n == 0:
        return (0,) + (None,) * len(m.DISTRIBUTION_STATISTICS)
    xs = sorted(values)
    mean = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    pct = [percentile(xs, m.PERCENTILES[k]) for k in ("p10", "p25", "median", "p75", "p90")]
    return (n, mean, sd, xs[0], *pct, xs[-1])


def kaplan_meier(times: Sequence[tuple[int, bool]]) -> list[tuple[int, int, int, int, float]]:
    """(time_days, at_risk, events, censored, survival) per distinct time, ascending."""
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for t, event in times:
        counts[t][0 if event else 1] += 1
    at_risk = len(times)
    surv = 1.0
    rows = []
    for t in sorted(counts):
        events, censored = counts[t]
        surv *= 1 - events / at_risk
        rows.append((t, at_risk, events, censored, surv))
        at_risk -= events + censored
    return rows


_ALL_TABLES = tuple(
    sorted({d.table for d in m.DOMAINS.values()} | {m.PERSON_TABLE, m.OBSERVATION_PERIOD_TABLE,
           m.VISIT_TABLE, m.CONCEPT_ANCESTOR_TABLE})
)  # fmt: skip
