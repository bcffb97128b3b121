"""The SQL engines' shared base: compile the study, run it in the store, shape the rows.

`execute` runs, in one store session (`Store.session`: one connection, so temporary tables
persist between statements), the statement materialising the cohort as a temporary table
(once per run, under a fresh name), then one aggregate statement per analysis reading it, then
drops the table (also when a statement failed). Only aggregates come back from `execute`;
nothing patient-level leaves the store. The engine dispatches on the analysis type to finish
the rows the SQL returns (see `passerelle.query.compiler.analyses`): attrition gets its step
labels, survival its Kaplan-Meier product. Engines declare the study features they support as
`capabilities`; a study needing one they lack raises `Unsupported` before any SQL runs.

`cohort_members` is the one patient-level read: the cohort's entries, computed in SQL on the
store, for code running inside the node (`passerelle extract`, the privacy package); it never
crosses the federation.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from decimal import Decimal
from enum import StrEnum
from functools import singledispatchmethod
from typing import Any, ClassVar

import pyarrow as pa

from passerelle.cdm.stores.base import Store
from passerelle.errors import Unsupported, UserError
from passerelle.query import model as m
from passerelle.query.compiler.base import BaseCompiler, StudySQL
from passerelle.query.result import AggregateTable, ResultColumn, StudyResult


class Capability(StrEnum):
    MULTI_DOMAIN_ENTRY = "entry events from several domains"
    EXPOSURE_EXIT = "exit at the end of continuous exposure"
    ERA_COLLAPSE = "collapsing entries into eras"
    VISIT_FILTERS = "visit-type filters and breakdowns"
    DISTRIBUTION = "distributions with percentiles"
    SURVIVAL = "Kaplan-Meier survival"
    ATTRITION = "attrition tables"


ALL_CAPABILITIES = frozenset(Capability)


# cohort_members' columns.
MEMBERS_SCHEMA = pa.schema(
    [("person_id", pa.int64()), ("index_date", pa.date32()), ("exit_date", pa.date32())]
)


def required_capabilities(study: m.Study) -> set[Capability]:
    need: set[Capability] = set()
    cohort = study.cohort
    if len({e.domain for e in cohort.entry.events}) > 1:
        need.add(Capability.MULTI_DOMAIN_ENTRY)
    if cohort.exit is not None:
        need.add(Capability.ERA_COLLAPSE)
        if cohort.exit.kind is m.ExitKind.EXPOSURE:
            need.add(Capability.EXPOSURE_EXIT)
    if any(e.visit_type for e in m.walk_events(study)):
        need.add(Capability.VISIT_FILTERS)
    for a in study.analyses:
        if any(
            d.kind in (m.DimensionKind.SITE, m.DimensionKind.VISIT_TYPE)
            for d in getattr(a, "by", ())
        ):
            need.add(Capability.VISIT_FILTERS)
        kind = {m.Distribution: Capability.DISTRIBUTION, m.Survival: Capability.SURVIVAL,
                m.Attrition: Capability.ATTRITION}.get(type(a))  # fmt: skip
        if kind is not None:
            need.add(kind)
    return need


def normalise(value: Any, column: ResultColumn) -> Any:
    """A value as the result contract types it (PostgreSQL returns Decimal for big sums,
    DuckDB int128 for sums, ...)."""
    if value is None:
        return None
    if column.type == "integer":
        return int(value)
    if column.type == "number":
        return float(value)
    if column.type == "string":
        return str(value)
    return value


class SQLEngine:
    """Runs a Study on one store. Subclasses name the engine and its compiler class."""

    name: ClassVar[str] = ""
    compiler_class: ClassVar[type[BaseCompiler]] = BaseCompiler
    capabilities: ClassVar[frozenset[Capability]] = ALL_CAPABILITIES

    def __init__(self, store: Store) -> None:
        self.store = store

    def compiler(self, cohort_table: str | None = None) -> BaseCompiler:
        """The compiler writing this store's table names; the cohort table is named afresh
        per run unless given (temporary views of a Spark session are shared by its stores)."""
        name = cohort_table or f"passerelle_cohort_{uuid.uuid4().hex[:12]}"
        return self.compiler_class(qualify=self.store.qualified, cohort_table=name)

    def check(self, study: m.Study) -> None:
        missing = required_capabilities(study) - self.capabilities
        if missing:
            names = ", ".join(sorted(c.value for c in missing))
            raise Unsupported(f"the {self.name} engine does not support {names}")
        have = self.store.existing_tables()
        absent = [t for t in m.tables_needed(study) if t not in have]
        if absent:
            raise UserError(f"the store has no table {', '.join(absent)} (load it first)")

    def prepare(self, study: m.Study) -> None:
        """Anything the store needs before the statements run (Spark: views)."""

    def cleanup(self) -> None:
        """Undo `prepare`'s session changes, after the statements ran (or failed)."""

    def statements(self, study: m.Study) -> list[tuple[m.Analysis, str]]:
        """The analyses' statements (they read the cohort table `plan` creates)."""
        return self.compiler().statements(study)

    def plan(self, study: m.Study) -> StudySQL:
        return self.compiler().plan(study)

    def create_cohort(self, plan: StudySQL) -> None:
        for table in plan.tables:
            self.store.execute(table.create)
            self.store.analyze(table.name)

    def drop_cohort(self, plan: StudySQL) -> None:
        for sql in plan.drop:
            self.store.execute(sql)

    @contextlib.contextmanager
    def session(self, study: m.Study) -> Any:
        """The store session the study's statements run in, with `prepare`'s settings; undone
        after, also on failure (a failure while undoing never hides the first one)."""
        with self.store.session():
            self.prepare(study)
            try:
                yield
            finally:
                self.cleanup()

    def execute(self, study: m.Study) -> StudyResult:
        self.check(study)
        plan = self.plan(study)
        tables = []
        with self.session(study):
            try:
                self.create_cohort(plan)
                for analysis, sql in plan.analyses:
                    result = self.store.query(sql)
                    tables.append(self.table(analysis, study, result.rows))
            except BaseException:
                with contextlib.suppress(Exception):
                    self.drop_cohort(plan)
                raise
            self.drop_cohort(plan)
        return StudyResult(study.name, self.name, tables)

    def table(self, analysis: m.Analysis, study: m.Study, rows: list[Any]) -> AggregateTable:
        finished = self.finish(analysis, study, [tuple(r) for r in rows])
        columns = m.result_columns(analysis)
        typed = [tuple(normalise(v, c) for v, c in zip(r, columns, strict=True)) for r in finished]
        return AggregateTable(analysis.name, m.analysis_kind(analysis), columns, typed)

    def cohort_members(self, study: m.Study) -> pa.Table:
        """The study's cohort, one row per final entry, as a pyarrow.Table with columns
        ``person_id`` (int64), ``index_date`` and ``exit_date`` (date32; NULL when the cohort
        has no exit rule), ordered by person_id then index_date; the analyses are ignored.
        Computed by one SQL statement on the store, with the semantics of the reference
        engine's `cohort`. Patient-level: for use inside the node only (extracts)."""
        self.check(study)
        compiler = self.compiler()
        sql = compiler.sql(compiler.members(study))
        with self.session(study):
            table = self.store.query_arrow(sql)
        return table.cast(MEMBERS_SCHEMA) if table.num_rows else MEMBERS_SCHEMA.empty_table()

    # -- finishing rows, per analysis type ---------------------------------------------------
    @singledispatchmethod
    def finish(
        self, analysis: Any, study: m.Study, rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        return rows

    @finish.register
    def _(
        self, analysis: m.Attrition, study: m.Study, rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        labels = m.attrition_steps(study.cohort)
        return [(int(step), labels[int(step)], persons) for step, persons in sorted(rows)]

    @finish.register
    def _(
        self, analysis: m.Survival, study: m.Study, rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
        width = len(analysis.by)
        for r in rows:
            groups[tuple(r[:width])].append(tuple(int(_plain(v)) for v in r[width:]))
        out = []
        for g, steps in groups.items():
            surv = 1.0
            for t, at_risk, events, censored in sorted(steps):
                surv *= 1 - events / at_risk
                out.append((*g, t, at_risk, events, censored, surv))
        return out


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, Decimal) else v
