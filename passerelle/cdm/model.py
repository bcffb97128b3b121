"""The shape of a CDM table declaration: columns, keys and indexes."""

from __future__ import annotations

from dataclasses import dataclass, field

LOGICAL_TYPES = ("INTEGER", "BIGINT", "DOUBLE", "DATE", "TIMESTAMP", "VARCHAR")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    size: int | None = None
    required: bool = False
    primary_key: bool = False
    references: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in LOGICAL_TYPES:
            raise ValueError(f"column {self.name}: unknown logical type {self.type}")


@dataclass(frozen=True)
class Index:
    name: str
    column: str
    clustered: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    vocabulary: bool = False
    description: str = ""
    indexes: tuple[Index, ...] = field(default=())

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.primary_key)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}.{name}")
