"""Compiling analyses: one statement per analysis, reading the materialised cohort table
(`BaseCompiler.plan`; attrition reads its own ``flagged`` CTE).

Each statement's columns are the analysis's `model.result_columns`, in order, except:
- ``attrition`` returns ``(step, persons)``: the step labels may be names from the spec, which
  never reach SQL, so the engine adds the ``criterion`` column from `model.attrition_steps`;
- ``survival`` returns ``(by..., time_days, at_risk, events, censored)``: the Kaplan-Meier
  product has no SQL aggregate, so the engine multiplies the steps, in time order, exactly as
  the reference engine does.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatchmethod

from sqlglot import exp

from passerelle.query import model as m
from passerelle.query.compiler import sql as q
from passerelle.query.compiler.cohort import CohortCompiler, key_order
from passerelle.query.compiler.ctes import Ctes

VISIT_DIMS = {m.DimensionKind.SITE: "care_site_id", m.DimensionKind.VISIT_TYPE: "visit_concept_id"}


class AnalysisCompiler(CohortCompiler):
    """Mixin of the base compiler: the SELECT of each analysis, dispatched on its type."""

    # The table holding the final cohort entries (set by BaseCompiler).
    cohort_table: str

    def dimension(self, d: m.Dimension, f: str, v: str) -> exp.Expression:
        k = d.kind
        if k is m.DimensionKind.SEX:
            return q.col("gender_concept_id", f)
        if k is m.DimensionKind.AGE_BAND:
            width = int(d.width or 1)
            return self.floor_div(q.col("age", f), width) * q.num(width)
        if k is m.DimensionKind.INDEX_YEAR:
            return self.year(q.col("index_date", f))
        if k is m.DimensionKind.INDEX_MONTH:
            return self.month(q.col("index_date", f))
        if k in VISIT_DIMS:
            return q.col(VISIT_DIMS[k], v)
        if k is m.DimensionKind.ENTRY_CONCEPT:
            return q.col("concept_id", f)
        prefix = "x_" if d.source is m.ColumnSource.ENTRY else "p_"
        return q.col(f"{prefix}{d.column}", f)

    def dims(self, ctes: Ctes, by: tuple[m.Dimension, ...]) -> list[str]:
        """Add ``dims``: the final entries with one column d_i per breakdown."""
        f, v = "f", "v"
        sel = q.select(exp.Column(this=exp.Star(), table=exp.to_identifier(f))).from_(
            exp.alias_(exp.to_table(self.cohort_table), f, table=True),
            copy=False,
        )
        if any(d.kind in VISIT_DIMS for d in by):
            sel = sel.join(
                self.table(m.VISIT_TABLE, v),
                on=q.col("visit_occurrence_id", v).eq(q.col("visit_id", f)),
                join_type="left",
                copy=False,
            )
        names = []
        for i, d in enumerate(by):
            names.append(f"d_{i}")
            sel = sel.select(q.alias(self.dimension(d, f, v), f"d_{i}"), copy=False)
        ctes.add("dims", sel)
        return names

    def first_hits(self, ctes: Ctes, event: m.Event, window: m.Window, until_exit: bool) -> str:
        """``hits``: per final entry, the start date of its first `event` in `window` (and on or
        before its exit)."""
        ev = self.event_cte(ctes, event)
        f, t = "f", "t"
        until = q.col("exit_date", f) if until_exit else None
        return ctes.add(
            "hits",
            q.select(
                q.alias(q.col("person_id", f), "person_id"),
                q.alias(q.col("entry_no", f), "entry_no"),
                q.alias(exp.Min(this=q.col("start_date", t)), "first_hit"),
            )
            .from_(exp.alias_(exp.to_table(self.cohort_table), f, table=True), copy=False)
            .join(
                exp.alias_(exp.to_table(ev), t, table=True),
                on=q.and_(*self.in_window(t, f, window, until)),
                copy=False,
            )
            .group_by(q.col("person_id", f), q.col("entry_no", f), copy=False),
        )

    def with_hits(self, dims: list[str], extra: Sequence[exp.Expression]) -> exp.Select:
        f, h = "f", "h"
        return (
            q.select(
                q.alias(q.col("person_id", f), "person_id"),
                *[q.alias(q.col(n, f), n) for n in dims],
                *extra,
            )
            .from_(exp.alias_(exp.to_table("dims"), f, table=True), copy=False)
            .join(
                exp.alias_(exp.to_table("hits"), h, table=True),
                on=q.and_(
                    q.col("person_id", h).eq(q.col("person_id", f)),
                    q.col("entry_no", h).eq(q.col("entry_no", f)),
                ),
                join_type="left",
                copy=False,
            )
        )

    def ratio(self, num: exp.Expression, den: exp.Expression) -> exp.Expression:
        """num / den as a double, NULL when den is 0 (or NULL)."""
        return q.case(
            exp.Paren(this=den.copy()).eq(0),
            exp.Null(),
            self.to_double(num) / self.to_double(den),
        )

    def end_offset(self, window: m.Window, has_exit: bool) -> exp.Expression:
        """Days from index to the end of the time at risk: window end capped at the exit."""
        diff = (
            self.day_diff(q.col("exit_date", "f"), q.col("index_date", "f")) if has_exit else None
        )
        if window.end is None:
            assert diff is not None
            return diff
        end = q.num(window.end)
        if diff is None:
            return end
        return q.case(end <= diff, end.copy(), diff.copy())

    def group_select(self, dims: list[str], by: tuple[m.Dimension, ...], source: str) -> exp.Select:
        sel = q.select(
            *[q.alias(q.col(n), d.output_name, quoted=True) for n, d in zip(dims, by, strict=True)]
        ).from_(source, copy=False)
        if dims:
            sel = sel.group_by(*[q.col(n) for n in dims], copy=False)
        return sel

    # -- dispatch ----------------------------------------------------------------------------
    @singledispatchmethod
    def analysis(
        self, a: object, ctes: Ctes, study: m.Study, flags: list[exp.Expression]
    ) -> exp.Query:
        from passerelle.errors import Unsupported

        raise Unsupported(f"no SQL for analysis type {type(a).__name__}")

    @analysis.register
    def _(self, a: m.Count, ctes: Ctes, study: m.Study, flags: list[exp.Expression]) -> exp.Query:
        dims = self.dims(ctes, a.by)
        value = (
            q.count_distinct(q.col("person_id"))
            if a.unit is m.CountUnit.PERSONS
            else q.count_star()
        )
        return self.group_select(dims, a.by, "dims").select(
            q.alias(value, a.unit.value, quoted=True), copy=False
        )

    @analysis.register
    def _(self, a: m.Outcome, ctes: Ctes, study: m.Study, flags: list[exp.Expression]) -> exp.Query:
        has_exit = study.cohort.exit is not None
        dims = self.dims(ctes, a.by)
        self.first_hits(ctes, a.event, a.window, has_exit)
        hit = exp.Not(this=exp.Is(this=q.col("first_hit", "h"), expression=exp.Null()))
        extra = [q.alias(q.flag(hit), "has_hit")]
        if a.rate:
            end = q.case(
                hit.copy(),
                self.day_diff(q.col("first_hit", "h"), q.col("index_date", "f")),
                self.end_offset(a.window, has_exit),
            )
            span = exp.Paren(this=end) - q.num(int(a.window.start or 0)) + q.num(1)
            extra.append(q.alias(q.case(span > 0, span.copy(), q.num(0)), "tar_days"))
        ctes.add("per_entry", self.with_hits(dims, extra))
        persons = q.count_distinct(q.col("person_id"))
        outcome = q.count_distinct(q.case(q.col("has_hit").eq(1), q.col("person_id")))
        cols = [
            q.alias(persons, "persons", quoted=True),
            q.alias(outcome, "outcome_persons", quoted=True),
            q.alias(self.ratio(outcome, persons), "proportion", quoted=True),
        ]
        if a.rate:
            days: exp.Expression = exp.Coalesce(
                this=exp.cast(exp.Sum(this=q.col("tar_days")), q.BIGINT), expressions=[q.num(0)]
            )
            entries = exp.Coalesce(
                this=exp.cast(exp.Sum(this=q.col("has_hit")), q.BIGINT), expressions=[q.num(0)]
            )
            cols += [
                q.alias(days, "person_days", quoted=True),
                q.alias(entries, "outcome_entries", quoted=True),
                q.alias(
                    self.ratio(entries.copy() * q.num(365250), days.copy()),
                    "incidence_per_1000py",
                    quoted=True,
                ),
            ]
        return self.group_select(dims, a.by, "per_entry").select(*cols, copy=False)

    @analysis.register
    def _(
        self, a: m.Distribution, ctes: Ctes, study: m.Study, flags: list[exp.Expression]
    ) -> exp.Query:
        dims = self.dims(ctes, a.by)
        f = "f"
        dim_cols = [q.alias(q.col(n, f), n) for n in dims]
        if a.of is m.DistributionOf.AGE:
            vals = (
                q.select(*dim_cols, q.alias(self.to_double(q.col("age", f)), "x"))
                .from_(exp.alias_(exp.to_table("dims"), f, table=True), copy=False)
                .where(
                    exp.Not(this=exp.Is(this=q.col("age", f), expression=exp.Null())), copy=False
                )
            )
        elif a.of is m.DistributionOf.DAYS_TO_OUTCOME:
            assert a.event is not None
            self.first_hits(ctes, a.event, a.window, study.cohort.exit is not None)
            days = self.day_diff(q.col("first_hit", "h"), q.col("index_date", f))
            vals = self.with_hits(dims, [q.alias(self.to_double(days), "x")]).where(
                exp.Not(this=exp.Is(this=q.col("first_hit", "h"), expression=exp.Null())),
                copy=False,
            )
        else:
            vals = self.values_in_window(ctes, a, dims)
        ctes.add("vals", vals)
        return self.summary(ctes, dims, a.by)

    def values_in_window(self, ctes: Ctes, a: m.Distribution, dims: list[str]) -> exp.Select:
        assert a.event is not None
        ev = self.event_cte(ctes, a.event)
        f, t = "f", "t"
        value = q.col("value_num", t)
        sel = (
            q.select(*[q.alias(q.col(n, f), n) for n in dims], q.alias(value, "x"))
            .from_(exp.alias_(exp.to_table("dims"), f, table=True), copy=False)
            .join(
                exp.alias_(exp.to_table(ev), t, table=True),
                on=q.and_(
                    *self.in_window(t, f, a.window),
                    exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                ),
                copy=False,
            )
        )
        if a.occurrence is m.Occurrence.ALL:
            return sel
        desc = a.occurrence is m.Occurrence.LAST
        order = [*key_order(t, desc=desc), q.ordered(value.copy(), desc=desc)]
        pick = q.window(exp.RowNumber(), [q.col("person_id", f), q.col("entry_no", f)], order)
        ctes.add("picked", sel.select(q.alias(pick, "pick"), copy=False))
        return (
            q.select(*[q.col(n) for n in dims], q.col("x"))
            .from_("picked", copy=False)
            .where(q.col("pick").eq(1), copy=False)
        )

    def summary(self, ctes: Ctes, dims: list[str], by: tuple[m.Dimension, ...]) -> exp.Select:
        """n, mean, sd, min, percentiles (type 7, as `model.Distribution`), max of ``vals``."""
        part = [q.col(n) for n in dims]
        n_all = q.window(q.count_star(), part)
        cols: list[exp.Expression] = [
            exp.Star(),
            q.alias(
                exp.Sub(
                    this=q.window(exp.RowNumber(), part, [q.ordered(q.col("x"))]),
                    expression=q.num(1),
                ),
                "i",
            ),
            q.alias(n_all, "n"),
            q.alias(
                q.window(exp.Sum(this=q.col("x")), part) / self.to_double(n_all.copy()), "mean"
            ),
        ]
        for name, p in m.PERCENTILES.items():
            h = self.to_double(exp.Paren(this=n_all.copy() - q.num(1))) * q.num(float(p))
            cols.append(q.alias(h, f"h_{name}"))
        ctes.add("ranked", q.select(*cols).from_("vals", copy=False))
        lo_cols: list[exp.Expression] = [exp.Star()]
        for name in m.PERCENTILES:
            lo = exp.cast(exp.Floor(this=q.col(f"h_{name}")), q.BIGINT)
            lo_cols.append(q.alias(lo, f"lo_{name}"))
            hi = q.case(
                lo.copy() + q.num(1) > q.col("n") - q.num(1),
                q.col("n") - q.num(1),
                lo.copy() + q.num(1),
            )
            lo_cols.append(q.alias(hi, f"hi_{name}"))
        ctes.add("ranks", q.select(*lo_cols).from_("ranked", copy=False))
        x = q.col("x")
        dev = exp.Paren(this=x - q.col("mean"))
        sd = q.case(
            q.count_star() > q.num(1),
            exp.Sqrt(
                this=exp.Sum(this=dev * dev.copy()) / self.to_double(q.count_star() - q.num(1))
            ),
        )
        stats: list[exp.Expression] = [
            q.alias(q.count_star(), "n", quoted=True),
            q.alias(exp.Max(this=q.col("mean")), "mean", quoted=True),
            q.alias(sd, "sd", quoted=True),
            q.alias(exp.Min(this=x.copy()), "min", quoted=True),
        ]
        for name in m.PERCENTILES:
            at_lo = exp.Max(this=q.case(q.col("i").eq(q.col(f"lo_{name}")), x.copy()))
            at_hi = exp.Max(this=q.case(q.col("i").eq(q.col(f"hi_{name}")), x.copy()))
            frac = exp.Max(this=q.col(f"h_{name}") - q.col(f"lo_{name}"))
            value = at_lo + frac * exp.Paren(this=at_hi - at_lo.copy())
            stats.append(q.alias(value, name, quoted=True))
        stats.append(q.alias(exp.Max(this=x.copy()), "max", quoted=True))
        return self.group_select(dims, by, "ranks").select(*stats, copy=False)

    @analysis.register
    def _(
        self, a: m.Attrition, ctes: Ctes, study: m.Study, flags: list[exp.Expression]
    ) -> exp.Query:
        selects = []
        for step in range(len(flags) + 1):
            who: exp.Expression = q.col("person_id")
            if step:
                who = q.case(q.and_(*[fl.copy().eq(1) for fl in flags[:step]]), who)
            selects.append(
                q.select(
                    q.alias(q.num(step), "step", quoted=True),
                    q.alias(q.count_distinct(who), "persons", quoted=True),
                ).from_("flagged", copy=False)
            )
        out: exp.Query = selects[0]
        for s in selects[1:]:
            out = exp.union(out, s, distinct=False)
        return out

    @analysis.register
    def _(
        self, a: m.Survival, ctes: Ctes, study: m.Study, flags: list[exp.Expression]
    ) -> exp.Query:
        has_exit = study.cohort.exit is not None
        dims = self.dims(ctes, a.by)
        self.first_hits(ctes, a.event, a.window, has_exit)
        hit = exp.Not(this=exp.Is(this=q.col("first_hit", "h"), expression=exp.Null()))
        end = self.end_offset(a.window, has_exit)
        time = q.case(
            hit.copy(),
            self.day_diff(q.col("first_hit", "h"), q.col("index_date", "f")),
            end,
        )
        times = self.with_hits(dims, [q.alias(time, "t"), q.alias(q.flag(hit), "ev")]).where(
            end.copy() >= q.num(int(a.window.start or 0)),
            copy=False,
        )
        ctes.add("times", times)
        steps = (
            q.select(
                *[q.col(n) for n in dims],
                q.alias(q.col("t"), "t"),
                q.alias(exp.cast(exp.Sum(this=q.col("ev")), q.BIGINT), "events"),
                q.alias(exp.cast(exp.Sum(this=q.num(1) - q.col("ev")), q.BIGINT), "censored"),
                q.alias(q.count_star(), "n_t"),
            )
            .from_("times", copy=False)
            .group_by(*[q.col(n) for n in dims], q.col("t"), copy=False)
        )
        ctes.add("steps", steps)
        at_risk = q.window(
            exp.Sum(this=q.col("n_t")),
            [q.col(n) for n in dims],
            [q.ordered(q.col("t"), desc=True)],
            frame="running",
        )
        return q.select(
            *[
                q.alias(q.col(n), d.output_name, quoted=True)
                for n, d in zip(dims, a.by, strict=True)
            ],
            q.alias(q.col("t"), "time_days", quoted=True),
            q.alias(exp.cast(at_risk, q.BIGINT), "at_risk", quoted=True),
            q.alias(q.col("events"), "events", quoted=True),
            q.alias(q.col("censored"), "censored", quoted=True),
        ).from_("steps", copy=False)
