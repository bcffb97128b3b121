"""The Spark engine: statements run as Spark SQL over the warehouse's Parquet views.

Only the aggregate result of each statement is collected to the driver; the cohort itself
stays distributed (every window is partitioned by person, except a distribution without a
breakdown, whose percentiles need one ordered pass over its values).

The cohort's temporary tables are not created with the compiled ``CACHE TABLE`` (what
`passerelle study compile` prints): Spark looks a cached view up only where a query reads it
outside a CTE, and the analyses read the cohort inside theirs, so each would recompute it.
The engine instead checkpoints each table's query locally (`SparkStore.materialise`: computed
once, its rows kept by the executors) and names it as a temporary view; ``DROP VIEW`` ends it.
"""

from __future__ import annotations

from passerelle.query import model as m
from passerelle.query.compiler.base import StudySQL
from passerelle.query.compiler.dialects import SparkCompiler
from passerelle.query.engines.base import SQLEngine


class SparkEngine(SQLEngine):
    name = "spark"
    compiler_class = SparkCompiler

    def prepare(self, study: m.Study) -> None:
        # Temporary views are session-wide and the session is shared by every store of the
        # process: another store may have replaced a view since this one registered it, so
        # the views this study reads are registered afresh.
        tables = list(m.tables_needed(study))
        registered = getattr(self.store, "_registered", None)
        if isinstance(registered, set):
            registered.difference_update(tables)
        self.store.register_views(tables)  # type: ignore[attr-defined]

    def create_cohort(self, plan: StudySQL) -> None:
        for table in plan.tables:
            self.store.materialise(table.name, table.query)  # type: ignore[attr-defined]
