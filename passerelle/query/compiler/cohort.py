"""Compiling a cohort: events -> entries -> per-step flags -> exits and eras.

The CTEs, in order (each one's columns are the compiler's own names):

- ``entry_events``: every row matching an entry event (one SELECT per CDM table, events of one
  table OR-ed so a row matching two events is one entry), with the ordering key of
  `model.Occurrence` (start date, domain rank, event id, concept id);
- ``exposure`` / ``exposure_eras`` (exposure exit only): exposure eras over all entry events;
- ``entry_pool`` / ``entry_observed`` / ``entry_periods`` / ``entry_candidates`` (only with the
  entry's ``observation_window`` or ``criteria``): every entry event numbered per person
  (``ev_no``), its observation period, and the events passing the entry's own rules (one 0/1
  column ``m_<i>`` per entry event in ``entry_events`` says which event a row matched);
- ``entries``: a per-person entry number (1 = the first / last entry for those occurrences);
- ``candidates``: the entries after ``occurrence``, joined to ``person`` (age, sex, ...);
- ``entered`` / ``observed`` (when a rule needs it): the observation period containing each
  index (earliest start, then latest end), as op_start / op_end of the candidates;
- ``crit_N``: per entry, how many events of leaf criterion N start in its window;
- ``flagged``: candidates with one 0/1 flag per attrition step (`model.attrition_steps`);
- ``qualified_pool`` / ``qualifying`` (``qualified_occurrence`` first / last only): each
  person's first / last entry passing every step;
- ``cohort``: the entries passing every step; then ``exits`` / ``collapse_*`` for cohorts
  with an exit, collapsed into eras; the last one is always ``cohort_entries``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlglot import exp

from passerelle.query import model as m
from passerelle.query.compiler import sql as q
from passerelle.query.compiler.ctes import Ctes

# Domains ordered as their names sort (the reference engine compares the names).
DOMAIN_RANK = {d: i for i, d in enumerate(sorted(m.Domain, key=lambda d: d.value))}
KEY_COLUMNS = ("start_date", "domain_rank", "event_id", "concept_id")
FINAL = "cohort_entries"


def key_order(alias: str | None = None, desc: bool = False) -> list[exp.Ordered]:
    """The occurrence ordering key; NULL ids sort last ascending (first descending)."""
    return [q.ordered(q.col(c, alias), desc=desc, nulls_first=desc) for c in KEY_COLUMNS]


def needs_period(study: m.Study) -> bool:
    """Whether entries need the observation period containing their index."""
    if study.cohort.observation is not None:
        return True

    def observed(c: m.Criterion) -> bool:
        if isinstance(c, (m.Require, m.Exclude)):
            return c.window.observed
        return any(observed(x) for x in c.criteria)

    if any(observed(c) for c in study.cohort.criteria):
        return True
    return any(getattr(getattr(a, "window", None), "observed", False) for a in study.analyses)


class CohortCompiler:
    """Mixin of the base compiler: the cohort CTEs. Relies on the dialect methods
    (`date_add`, `day_diff`, `year`, ...) and `table` of the base class."""

    # -- provided by BaseCompiler ------------------------------------------------------------
    def table(self, name: str, alias: str) -> exp.Table:  # pragma: no cover - abstract
        raise NotImplementedError

    def date_add(self, d: exp.Expression, days: int) -> exp.Expression:  # pragma: no cover
        raise NotImplementedError

    def day_diff(
        self, later: exp.Expression, earlier: exp.Expression
    ) -> exp.Expression:  # pragma: no cover
        raise NotImplementedError

    def year(self, d: exp.Expression) -> exp.Expression:  # pragma: no cover
        raise NotImplementedError

    def month(self, d: exp.Expression) -> exp.Expression:  # pragma: no cover
        raise NotImplementedError

    def floor_div(self, e: exp.Expression, n: int) -> exp.Expression:  # pragma: no cover
        raise NotImplementedError

    def to_double(self, e: exp.Expression) -> exp.Expression:  # pragma: no cover
        raise NotImplementedError

    # -- events ------------------------------------------------------------------------------
    def descendants(self, ids: tuple[int, ...]) -> exp.Select:
        return (
            q.select(q.col("descendant_concept_id", "ca"))
            .from_(self.table(m.CONCEPT_ANCESTOR_TABLE, "ca"), copy=False)
            .where(q.in_list(q.col("ancestor_concept_id", "ca"), ids), copy=False)
        )

    def concept_set(
        self, concept: exp.Expression, expanded: tuple[int, ...], exact: tuple[int, ...]
    ) -> exp.Expression:
        """`concept` is one of `expanded` (with their descendants) or `exact`. One IN over a
        UNION: planners turn it into a semi-join (an OR of two INs scans 4x slower)."""
        ids = sorted(set(expanded) | set(exact))
        if not expanded:
            return q.in_list(concept, ids)
        union: exp.Query = self.descendants(tuple(sorted(set(expanded))))
        for i in ids:
            union = exp.union(union, q.select(q.num(i)), distinct=False)
        return q.in_query(concept, union)

    def concept_match(self, cs: m.ConceptSet, info: m.DomainTable, t: str) -> exp.Expression:
        concept = q.col(info.concept_column, t)
        std = None
        if cs.concepts or cs.exact:
            expand = cs.concepts if cs.descendants else ()
            plain = cs.exact if cs.descendants else cs.concepts + cs.exact
            std = self.concept_set(concept, expand, plain)
            if cs.exclude or cs.exclude_exact:
                expand = cs.exclude if cs.descendants else ()
                plain = cs.exclude_exact if cs.descendants else cs.exclude + cs.exclude_exact
                out = self.concept_set(concept.copy(), expand, plain)
                std = q.and_(std, exp.Not(this=exp.Paren(this=out)))
        src = None
        if cs.source_concepts and info.source_concept_column:
            src = q.in_list(q.col(info.source_concept_column, t), cs.source_concepts)
        return q.or_(std, src)

    def event_match(self, e: m.Event, t: str) -> exp.Expression:
        info = e.table
        start = q.col(info.start_column, t)
        conds: list[exp.Expression] = []
        if e.concepts is not None:
            conds.append(exp.Paren(this=self.concept_match(e.concepts, info, t)))
        if e.dates is not None:
            if e.dates.start is not None:
                conds.append(start >= q.date_lit(e.dates.start))
            if e.dates.end is not None:
                conds.append(start <= q.date_lit(e.dates.end))
        if e.value is not None:
            value = q.col(str(info.value_column), t)
            conds.append(exp.Not(this=exp.Is(this=value, expression=exp.Null())))
            conds.append(self.value_match(value, e.value))
        if e.unit:
            conds.append(q.in_list(q.col(str(info.unit_column), t), e.unit))
        if e.value_concepts:
            conds.append(q.in_list(q.col(str(info.value_concept_column), t), e.value_concepts))
        if e.visit_type:
            visits = (
                q.select(q.col("visit_occurrence_id", "vt"))
                .from_(self.table(m.VISIT_TABLE, "vt"), copy=False)
                .where(q.in_list(q.col("visit_concept_id", "vt"), e.visit_type), copy=False)
            )
            conds.append(q.in_query(q.col(str(info.visit_column), t), visits))
        return exp.Paren(this=q.and_(*conds)) if conds else exp.true()

    def value_match(self, value: exp.Expression, r: m.ValueRange) -> exp.Expression:
        """`value` (not NULL) lies in `r` (`model.ValueRange`)."""
        lo = None if r.min is None else q.num(r.min)
        hi = None if r.max is None else q.num(r.max)
        if r.outside:
            assert lo is not None and hi is not None  # model.ValueRange: outside has both
            return exp.Paren(this=q.or_(value.copy() < lo, value.copy() > hi))
        conds: list[exp.Expression] = []
        if lo is not None:
            conds.append(value.copy() > lo if r.min_exclusive else value.copy() >= lo)
        if hi is not None:
            conds.append(value.copy() < hi if r.max_exclusive else value.copy() <= hi)
        return q.and_(*conds)

    def event_select(
        self,
        domain: m.Domain,
        events: list[m.Event],
        extras: tuple[str, ...] = (),
        flags: tuple[tuple[str, exp.Expression], ...] = (),
    ) -> exp.Select:
        """Rows of one domain's table matching any of `events` (all of that domain), with
        the extra `flags` columns (name, expression over alias ``t``)."""
        info = m.DOMAINS[domain]
        t = "t"
        start = q.col(info.start_column, t)
        end = (
            exp.Coalesce(this=q.col(info.end_column, t), expressions=[start.copy()])
            if info.end_column
            else start.copy()
        )
        cols = [
            q.alias(q.col("person_id", t), "person_id"),
            q.alias(start, "start_date"),
            q.alias(end, "end_date"),
            q.alias(q.num(DOMAIN_RANK[domain]), "domain_rank"),
            q.alias(q.col(info.id_column or "person_id", t), "event_id"),
            q.alias(q.col(info.concept_column, t), "concept_id"),
            q.alias(
                q.col(info.visit_column, t) if info.visit_column else q.null(q.BIGINT), "visit_id"
            ),
            q.alias(
                q.col(info.value_column, t) if info.value_column else q.null(q.DOUBLE), "value_num"
            ),
            *[q.alias(q.col(x, t), f"x_{x}") for x in extras],
            *[q.alias(f, name) for name, f in flags],
        ]
        match = q.or_(*[self.event_match(e, t) for e in events])
        return (
            q.select(*cols)
            .from_(self.table(info.table, t), copy=False)
            .where(
                q.and_(
                    exp.Not(this=exp.Is(this=q.col("person_id", t), expression=exp.Null())),
                    exp.Not(this=exp.Is(this=start.copy(), expression=exp.Null())),
                    match,
                ),
                copy=False,
            )
        )

    def event_cte(self, ctes: Ctes, e: m.Event) -> str:
        return ctes.once(("event", e), "ev", lambda: self.event_select(e.domain, [e]))

    # -- cohort ------------------------------------------------------------------------------
    def entry_extras(self, study: m.Study) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Concept columns the analyses break down by: (of the entry event, of the person)."""
        entry: list[str] = []
        person: list[str] = []
        for a in study.analyses:
            for d in getattr(a, "by", ()):
                if d.kind is m.DimensionKind.CONCEPT_COLUMN:
                    target = entry if d.source is m.ColumnSource.ENTRY else person
                    if d.column not in target:
                        target.append(str(d.column))
        return tuple(entry), tuple(person)

    def cohort(self, ctes: Ctes, study: m.Study, flagged: bool = False) -> list[exp.Expression]:
        """Add the cohort CTEs up to ``cohort_entries``; or, with `flagged`, up to ``flagged``
        and return its flag columns (one per attrition step after ``entry``)."""
        cohort = study.cohort
        extras, person_extras = self.entry_extras(study)
        by_domain: dict[m.Domain, list[m.Event]] = {}
        for event in cohort.entry.events:
            by_domain.setdefault(event.domain, []).append(event)
        parts = [
            self.event_select(d, evs, extras, self.entry_flags(cohort.entry, d))
            for d, evs in by_domain.items()
        ]
        union: exp.Query = parts[0]
        for part in parts[1:]:
            union = exp.union(union, part, distinct=False)
        ctes.add("entry_events", union)

        source = "entry_events"
        exit_ = cohort.exit
        era = exit_ is not None and exit_.kind is m.ExitKind.EXPOSURE
        if era:
            source = self.exposure_eras(ctes, exit_.gap_days if exit_ else 0)
        if cohort.entry.filtered:
            source = self.entry_candidates(ctes, cohort.entry, source, era)
        occ = cohort.entry.occurrence
        entry_cols: list[exp.Expression] = [
            exp.Star(),
            q.alias(
                q.window(
                    exp.RowNumber(),
                    [q.col("person_id")],
                    key_order(desc=occ is m.Occurrence.LAST),
                ),
                "entry_no",
            ),
        ]
        if era and not cohort.entry.filtered:
            entry_cols.append(q.alias(self.era_end(), "era_end"))
        ctes.add("entries", q.select(*entry_cols).from_(source, copy=False))

        e, p = "e", "p"
        cand_cols = [
            q.alias(q.col("person_id", e), "person_id"),
            q.alias(q.col("entry_no", e), "entry_no"),
            q.alias(q.col("start_date", e), "index_date"),
            *[q.alias(q.col(c, e), c) for c in KEY_COLUMNS[1:]],
            q.alias(q.col("visit_id", e), "visit_id"),
            q.alias(q.col("end_date", e), "event_end"),
            *[q.alias(q.col(f"x_{x}", e), f"x_{x}") for x in extras],
            q.alias(q.col("gender_concept_id", p), "gender_concept_id"),
            q.alias(q.col("year_of_birth", p), "year_of_birth"),
            q.alias(self.year(q.col("start_date", e)) - q.col("year_of_birth", p), "age"),
            *[q.alias(q.col(x, p), f"p_{x}") for x in person_extras],
        ]
        if era:
            cand_cols.append(q.alias(q.col("era_end", e), "era_end"))
        cand = (
            q.select(*cand_cols)
            .from_(exp.alias_(exp.to_table("entries"), e, table=True), copy=False)
            .join(
                self.table(m.PERSON_TABLE, p),
                on=q.col("person_id", p).eq(q.col("person_id", e)),
                copy=False,
            )
        )
        if occ is not m.Occurrence.ALL:
            cand = cand.where(q.col("entry_no", e).eq(1), copy=False)
        periods = needs_period(study)
        names = [c.alias for c in cand_cols]
        if periods:
            ctes.add("entered", cand)
            ctes.add("observed", self.period_ranks("entered", "entry_no"))
            cand = self.with_period("entered", "observed", "entry_no", names)
            names += ["op_start", "op_end"]
        ctes.add("candidates", cand)
        if flagged:
            return self.flagged(ctes, cohort)
        kept = self.kept(ctes, cohort)
        if cohort.qualified_occurrence is not m.Occurrence.ALL:
            kept = self.qualified(ctes, kept, cohort.qualified_occurrence, names)
        if exit_ is None:
            ctes.add(FINAL, kept)
        else:
            ctes.add("cohort", kept)
            self.exits(ctes, cohort, exit_, names)
        return []

    def era_end(self) -> exp.Expression:
        """The end of the exposure era of each entry event (over all entry events)."""
        return q.window(exp.Max(this=q.col("end_date")), [q.col("person_id"), q.col("era_no")])

    def entry_flags(
        self, entry: m.Entry, domain: m.Domain
    ) -> tuple[tuple[str, exp.Expression], ...]:
        """With entry criteria: one 0/1 column ``m_<i>`` per entry event, 1 when the row (of
        `domain`'s table, alias ``t``) matches ``entry.events[i-1]``."""
        if not any(entry.criteria):
            return ()
        return tuple(
            (f"m_{i}", q.flag(self.event_match(e, "t")) if e.domain is domain else q.num(0))
            for i, e in enumerate(entry.events, start=1)
        )

    def entry_candidates(self, ctes: Ctes, entry: m.Entry, source: str, era: bool) -> str:
        """``entry_pool``: every entry event numbered per person (``ev_no``) with its start
        date as ``index_date`` (and, with an exposure exit, its era's end over all events);
        ``entry_candidates``: those passing the entry's observation and criteria."""
        pool_cols: list[exp.Expression] = [
            exp.Star(),
            q.alias(q.col("start_date"), "index_date"),
            q.alias(q.window(exp.RowNumber(), [q.col("person_id")], key_order()), "ev_no"),
        ]
        if era:
            pool_cols.append(q.alias(self.era_end(), "era_end"))
        src = ctes.add("entry_pool", q.select(*pool_cols).from_(source, copy=False))
        criteria = entry.all_criteria()
        if entry.observation_window is not None or any(
            leaf.window.observed for leaf in self.leaves(criteria)
        ):
            ctes.add("entry_observed", self.period_ranks(src, "ev_no"))
            src = ctes.add("entry_periods", self.with_period(src, "entry_observed", "ev_no", None))
        sel, names = self.criteria_join(ctes, src, "ev_no", criteria)
        conds: list[exp.Expression] = []
        if entry.observation_window is not None:
            conds.append(self.observation_holds("c", entry.observation_window))
        if any(entry.criteria):
            conds.append(
                exp.Paren(
                    this=q.or_(
                        *[
                            exp.Paren(
                                this=q.and_(
                                    q.col(f"m_{i}", "c").eq(1),
                                    *[self.criterion_holds(x, names) for x in crits],
                                )
                            )
                            for i, crits in enumerate(entry.criteria, start=1)
                        ]
                    )
                )
            )
        return ctes.add("entry_candidates", sel.where(q.and_(*conds), copy=False))

    def qualified(
        self, ctes: Ctes, kept: exp.Select, occ: m.Occurrence, names: list[str]
    ) -> exp.Select:
        """Each person's first / last entry among those `kept` (``qualified_occurrence``)."""
        ctes.add("qualified_pool", kept)
        desc = occ is m.Occurrence.LAST
        order = [
            q.ordered(q.col("index_date"), desc=desc, nulls_first=desc),
            *key_order(desc=desc)[1:],
        ]
        ctes.add(
            "qualifying",
            q.select(
                exp.Star(),
                q.alias(q.window(exp.RowNumber(), [q.col("person_id")], order), "q_no"),
            ).from_("qualified_pool", copy=False),
        )
        return (
            q.select(*[q.col(n) for n in names])
            .from_("qualifying", copy=False)
            .where(q.col("q_no").eq(1), copy=False)
        )

    def exposure_eras(self, ctes: Ctes, gap_days: int) -> str:
        """Eras of all entry events per person: an event opens a new era when it starts more
        than `gap_days` after the latest end date so far."""
        prev = q.window(
            exp.Max(this=q.col("end_date")), [q.col("person_id")], key_order(), frame="before"
        )
        ctes.add(
            "exposure",
            q.select(exp.Star(), q.alias(prev, "prev_end")).from_("entry_events", copy=False),
        )
        new_era = q.flag(
            q.or_(
                exp.Is(this=q.col("prev_end"), expression=exp.Null()),
                q.col("start_date") > self.date_add(q.col("prev_end"), gap_days),
            )
        )
        era_no = q.window(exp.Sum(this=new_era), [q.col("person_id")], key_order(), frame="running")
        ctes.add(
            "exposure_eras",
            q.select(exp.Star(), q.alias(era_no, "era_no")).from_("exposure", copy=False),
        )
        return "exposure_eras"

    def period_ranks(self, source: str, key: str) -> exp.Select:
        """Per row of `source` (person_id, `key`, index_date): every observation period
        containing the index, ranked (earliest start, then latest end, first)."""
        c, op = "c", "op"
        start, end = (
            q.col("observation_period_start_date", op),
            q.col("observation_period_end_date", op),
        )
        rank = q.window(
            exp.RowNumber(),
            [q.col("person_id", c), q.col(key, c)],
            [q.ordered(start.copy()), q.ordered(end.copy(), desc=True)],
        )
        return (
            q.select(
                q.alias(q.col("person_id", c), "person_id"),
                q.alias(q.col(key, c), key),
                q.alias(start, "op_start"),
                q.alias(end, "op_end"),
                q.alias(rank, "op_rank"),
            )
            .from_(exp.alias_(exp.to_table(source), c, table=True), copy=False)
            .join(
                self.table(m.OBSERVATION_PERIOD_TABLE, op),
                on=q.and_(
                    q.col("person_id", op).eq(q.col("person_id", c)),
                    start.copy() <= q.col("index_date", c),
                    end.copy() >= q.col("index_date", c),
                ),
                copy=False,
            )
        )

    def with_period(self, source: str, ranks: str, key: str, names: list[str] | None) -> exp.Select:
        """`source`'s columns `names` (None: all) with the start and end of the observation
        period containing the index (NULL when none does), from `ranks`."""
        c, o = "c", "o"
        cols = (
            [exp.Column(this=exp.Star(), table=exp.to_identifier(c))]
            if names is None
            else [q.col(n, c) for n in names]
        )
        return (
            q.select(
                *cols,
                q.alias(q.col("op_start", o), "op_start"),
                q.alias(q.col("op_end", o), "op_end"),
            )
            .from_(exp.alias_(exp.to_table(source), c, table=True), copy=False)
            .join(
                exp.alias_(exp.to_table(ranks), o, table=True),
                on=q.and_(
                    q.col("person_id", o).eq(q.col("person_id", c)),
                    q.col(key, o).eq(q.col(key, c)),
                    q.col("op_rank", o).eq(1),
                ),
                join_type="left",
                copy=False,
            )
        )

    def in_window(
        self, t: str, f: str, window: m.Window, until: exp.Expression | None = None
    ) -> list[exp.Expression]:
        """Conditions: event `t` of the entry `f`'s person starts in `window` (and on or before
        `until`)."""
        start = q.col("start_date", t)
        conds: list[exp.Expression] = [q.col("person_id", t).eq(q.col("person_id", f))]
        if window.start is not None:
            conds.append(start >= self.date_add(q.col("index_date", f), window.start))
        if window.end is not None:
            conds.append(start.copy() <= self.date_add(q.col("index_date", f), window.end))
        if until is not None:
            conds.append(start.copy() <= until)
        if window.observed:
            conds.append(start.copy() >= q.col("op_start", f))
            conds.append(start.copy() <= q.col("op_end", f))
        return conds

    def leaves(self, criteria: tuple[m.Criterion, ...]) -> Iterator[m.Require | m.Exclude]:
        for c in criteria:
            if isinstance(c, (m.Require, m.Exclude)):
                yield c
            else:
                yield from self.leaves(c.criteria)

    def criterion_counts(
        self, ctes: Ctes, leaf: m.Require | m.Exclude, source: str, key: str
    ) -> str:
        """Per row of `source` (person_id, `key`): how many `leaf` events start in its
        window (rows without one are absent)."""

        def build() -> exp.Select:
            ev = self.event_cte(ctes, leaf.event)
            c, t = "c", "t"
            return (
                q.select(
                    q.alias(q.col("person_id", c), "person_id"),
                    q.alias(q.col(key, c), key),
                    q.alias(q.count_star(), "n"),
                )
                .from_(exp.alias_(exp.to_table(source), c, table=True), copy=False)
                .join(
                    exp.alias_(exp.to_table(ev), t, table=True),
                    on=q.and_(*self.in_window(t, c, leaf.window)),
                    copy=False,
                )
                .group_by(q.col("person_id", c), q.col(key, c), copy=False)
            )

        return ctes.once(("criterion", source, leaf.event, leaf.window), "crit", build)

    def criteria_join(
        self, ctes: Ctes, source: str, key: str, criteria: tuple[m.Criterion, ...]
    ) -> tuple[exp.Select, dict[Any, str]]:
        """``source c`` left-joined to the counts of every leaf of `criteria` (aliases
        ``k_<n>``, by (event, window) in the returned names)."""
        c = "c"
        sel = q.select(exp.Column(this=exp.Star(), table=exp.to_identifier(c))).from_(
            exp.alias_(exp.to_table(source), c, table=True), copy=False
        )
        names: dict[Any, str] = {}
        for leaf in self.leaves(criteria):
            lk = (leaf.event, leaf.window)
            if lk not in names:
                names[lk] = k = f"k_{len(names) + 1}"
                crit = self.criterion_counts(ctes, leaf, source, key)
                sel = sel.join(
                    exp.alias_(exp.to_table(crit), k, table=True),
                    on=q.and_(
                        q.col("person_id", k).eq(q.col("person_id", c)),
                        q.col(key, k).eq(q.col(key, c)),
                    ),
                    join_type="left",
                    copy=False,
                )
        return sel, names

    def observation_holds(self, c: str, ob: m.Observation) -> exp.Expression:
        """The index of row `c` lies in its observation period (op_start / op_end) with
        `ob`'s days before and after it."""
        index = q.col("index_date", c)
        return q.and_(
            exp.Not(this=exp.Is(this=q.col("op_start", c), expression=exp.Null())),
            self.date_add(q.col("op_start", c), ob.prior_days) <= index,
            q.col("op_end", c) >= self.date_add(index.copy(), ob.post_days),
        )

    def criterion_holds(self, c: m.Criterion, names: dict[Any, str]) -> exp.Expression:
        if isinstance(c, m.Require):
            n = exp.Coalesce(this=q.col("n", names[(c.event, c.window)]), expressions=[q.num(0)])
            conds: list[exp.Expression] = [n >= q.num(c.min_count)]
            if c.max_count is not None:
                conds.append(n.copy() <= q.num(c.max_count))
            return exp.Paren(this=q.and_(*conds))
        if isinstance(c, m.Exclude):
            return exp.Is(this=q.col("n", names[(c.event, c.window)]), expression=exp.Null())
        children = [self.criterion_holds(x, names) for x in c.criteria]
        combine = q.and_ if isinstance(c, m.AllOf) else q.or_
        return exp.Paren(this=combine(*children))

    def steps(self, ctes: Ctes, cohort: m.Cohort) -> tuple[exp.Select, list[exp.Expression]]:
        """``candidates c`` joined to the criteria counts, and one condition per attrition
        step after ``entry``."""
        c = "c"
        sel, names = self.criteria_join(ctes, "candidates", "entry_no", cohort.criteria)
        conds: list[exp.Expression] = []
        index = q.col("index_date", c)
        if cohort.observation is not None:
            conds.append(self.observation_holds(c, cohort.observation))
        if cohort.demographics is not None:
            d = cohort.demographics
            demo: list[exp.Expression] = []
            if d.sex:
                demo.append(q.in_list(q.col("gender_concept_id", c), d.sex))
            for rng, column in ((d.age, "age"), (d.year_of_birth, "year_of_birth")):
                if rng is not None:
                    v = q.col(column, c)
                    demo.append(exp.Not(this=exp.Is(this=v, expression=exp.Null())))
                    if rng.min is not None:
                        demo.append(v.copy() >= q.num(rng.min))
                    if rng.max is not None:
                        demo.append(v.copy() <= q.num(rng.max))
            conds.append(q.and_(*demo))
        if cohort.period is not None:
            period: list[exp.Expression] = []
            if cohort.period.start is not None:
                period.append(index.copy() >= q.date_lit(cohort.period.start))
            if cohort.period.end is not None:
                period.append(index.copy() <= q.date_lit(cohort.period.end))
            conds.append(q.and_(*period))
        for crit_ in cohort.criteria:
            conds.append(self.criterion_holds(crit_, names))
        return sel, conds

    def flagged(self, ctes: Ctes, cohort: m.Cohort) -> list[exp.Expression]:
        """``flagged``: every candidate with a 0/1 column f_N per attrition step N >= 1."""
        sel, conds = self.steps(ctes, cohort)
        flags: list[exp.Expression] = []
        for i, cond in enumerate(conds, start=1):
            sel = sel.select(q.alias(q.flag(cond), f"f_{i}"), copy=False)
            flags.append(q.col(f"f_{i}"))
        ctes.add("flagged", sel)
        return flags

    def kept(self, ctes: Ctes, cohort: m.Cohort) -> exp.Select:
        """The candidates passing every step, filtered with plain conditions (so planners see
        them)."""
        sel, conds = self.steps(ctes, cohort)
        return sel.where(q.and_(*conds), copy=False) if conds else sel

    # -- exit and eras -----------------------------------------------------------------------
    def exits(self, ctes: Ctes, cohort: m.Cohort, ex: m.Exit, names: list[str]) -> None:
        index = q.col("index_date")
        if ex.kind is m.ExitKind.FIXED:
            exit_date = self.date_add(index, ex.days)
        elif ex.kind is m.ExitKind.OBSERVATION_END:
            exit_date = q.col("op_end")
        elif ex.kind is m.ExitKind.EVENT_END:
            exit_date = self.date_add(q.col("event_end"), ex.days)
        else:
            exit_date = self.date_add(q.col("era_end"), ex.days)
        if cohort.observation is not None and ex.kind is not m.ExitKind.OBSERVATION_END:
            exit_date = q.case(q.col("op_end") < exit_date, q.col("op_end"), exit_date.copy())
        ctes.add(
            "exits",
            q.select(exp.Star(), q.alias(exit_date, "exit_date")).from_("cohort", copy=False),
        )
        order = [q.ordered(index.copy()), q.ordered(q.col("exit_date")), *key_order()[1:]]
        person = [q.col("person_id")]
        prev = q.window(exp.Max(this=q.col("exit_date")), person, order, frame="before")
        ctes.add(
            "collapse_1",
            q.select(exp.Star(), q.alias(prev, "prev_exit")).from_("exits", copy=False),
        )
        new = q.flag(
            q.or_(
                exp.Is(this=q.col("prev_exit"), expression=exp.Null()),
                index.copy() > self.date_add(q.col("prev_exit"), ex.collapse_days),
            )
        )
        era = q.window(exp.Sum(this=new), person, order, frame="running")
        ctes.add(
            "collapse_2",
            q.select(exp.Star(), q.alias(era, "era_no")).from_("collapse_1", copy=False),
        )
        era_part = [q.col("person_id"), q.col("era_no")]
        ctes.add(
            "collapse_3",
            q.select(
                exp.Star(),
                q.alias(q.window(exp.RowNumber(), era_part, order), "era_rank"),
                q.alias(q.window(exp.Max(this=q.col("exit_date")), era_part), "era_exit"),
            ).from_("collapse_2", copy=False),
        )
        cols = [q.col(n) for n in names]
        ctes.add(
            FINAL,
            q.select(*cols, q.alias(q.col("era_exit"), "exit_date"))
            .from_("collapse_3", copy=False)
            .where(q.col("era_rank").eq(1), copy=False),
        )
