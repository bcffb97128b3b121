"""The SQL engines' shared base: compile each analysis, run it in the store, shape the rows.

An engine runs only aggregate statements in the store (`Store.query`); nothing patient-level
comes back. It dispatches on the analysis type to finish the rows the SQL returns (see
`passerelle.query.compiler.analyses`): attrition gets its step labels, survival its
Kaplan-Meier product. Engines declare the study features they support as `capabilities`;
a study needing one they lack raises `Unsupported` before any SQL runs.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from enum import StrEnum
from functools import singledispatchmethod
from typing import Any, ClassVar

from passerelle.cdm.stores.base import Store
from passerelle.errors import Unsupported, UserError
from passerelle.query import model as m
from passerelle.query.compiler.base import BaseCompiler
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

    def compiler(self) -> BaseCompiler:
        return self.compiler_class(qualify=self.store.qualified)

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
        return self.compiler().statements(study)

    def execute(self, study: m.Study) -> StudyResult:
        self.check(study)
        statements = self.statements(study)
        tables = []
        self.prepare(study)
        try:
            for analysis, sql in statements:
                result = self.store.query(sql)
                rows = self.finish(analysis, study, [tuple(r) for r in result.rows])
                columns = m.result_columns(analysis)
                rows = [
                    tuple(normalise(v, c) for v, c in zip(r, columns, strict=True)) for r in rows
                ]
                tables.append(
                    AggregateTable(analysis.name, m.analysis_kind(analysis), columns, rows)
                )
        finally:
            self.cleanup()
        return StudyResult(study.name, self.name, tables)

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
