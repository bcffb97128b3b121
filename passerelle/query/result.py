"""What every engine returns and the privacy layer consumes: named aggregate tables.

The contract between `query` (engines), `privacy` (disclosure control at the node) and
`federation` (merging at the hub). Rows are tuples in column order; a column's `kind` tells the
disclosure layer what it is:

- ``dimension``: a breakdown value (sex concept id, age band lower bound, year, ...);
- ``count``: a count of persons or entries (subject to minimum cell size and rounding);
- ``statistic``: a derived number (mean, sd, percentile, proportion, rate, ...);
- ``person_time``: days at risk summed over persons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ColumnKind = Literal["dimension", "count", "statistic", "person_time"]


@dataclass(frozen=True)
class ResultColumn:
    name: str
    kind: ColumnKind
    type: str = "integer"  # integer | number | string | date


@dataclass
class AggregateTable:
    name: str  # the analysis name from the spec
    analysis: str  # count | outcome | distribution | attrition | survival
    columns: tuple[ResultColumn, ...]
    rows: list[tuple[Any, ...]]
    # Per-cell disclosure flags set by the privacy layer: (row index, column name) -> flags.
    flags: dict[tuple[int, str], frozenset[str]] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def sorted_rows(self) -> list[tuple[Any, ...]]:
        """Rows in a canonical order (engines need not agree on row order)."""
        return sorted(self.rows, key=lambda r: tuple((v is None, str(type(v)), v) for v in r))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "analysis": self.analysis,
            "columns": [c.name for c in self.columns],
            "column_kinds": {c.name: c.kind for c in self.columns},
            "rows": [list(r) for r in self.sorted_rows()],
        }


@dataclass
class StudyResult:
    study: str
    engine: str
    tables: list[AggregateTable]
    # Set by the privacy layer: the policy's name and version, or "none" for the local steward.
    policy: str | None = None

    def table(self, name: str) -> AggregateTable:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "study": self.study,
            "engine": self.engine,
            "analyses": [
                {
                    "name": t.name,
                    "columns": list(t.column_names),
                    "rows": [list(r) for r in t.sorted_rows()],
                }
                for t in self.tables
            ],
        }
        if self.policy is not None:
            out["policy"] = self.policy
        return out
