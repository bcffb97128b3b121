"""Small builders over sqlglot expressions, so the compiler reads like the SQL it writes.

Every value that reaches SQL goes through one of these: concept ids and numbers become typed
numeric literals, dates typed date literals; identifiers are the compiler's own (CTE names,
column names from the CDM declaration, result column names from the model, all validated
identifiers) and are quoted where they name an output column.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence

from sqlglot import exp

from passerelle.errors import Unsupported

DOUBLE = exp.DataType.build("DOUBLE")
BIGINT = exp.DataType.build("BIGINT")
INT = exp.DataType.build("INT")
DATE = exp.DataType.build("DATE")


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table)


def out(name: str) -> exp.Identifier:
    """A quoted output column alias (result column names come from the model)."""
    return exp.to_identifier(name, quoted=True)


def alias(e: exp.Expression, name: str, quoted: bool = False) -> exp.Expression:
    return exp.alias_(e, exp.to_identifier(name, quoted=quoted))  # type: ignore[return-value]


def num(v: int | float) -> exp.Expression:
    """A typed numeric literal: integers as integers, floats as DOUBLE."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"not a number: {type(v).__name__}")
    if isinstance(v, int):
        lit = exp.Literal.number(int(v))
        return exp.Neg(this=exp.Literal.number(-v)) if v < 0 else lit
    if not math.isfinite(v):
        raise Unsupported("a value range bound is not a finite number")
    text = repr(abs(v))
    cast = exp.cast(exp.Literal.number(text), DOUBLE)
    return exp.Neg(this=cast) if v < 0 else cast


def date_lit(d: dt.date) -> exp.Expression:
    return exp.cast(exp.Literal.string(d.isoformat()), DATE)


def null(type_: exp.DataType) -> exp.Expression:
    return exp.cast(exp.Null(), type_)


def in_list(e: exp.Expression, values: Iterable[int]) -> exp.Expression:
    vals = sorted(set(values))
    if not vals:
        return exp.false()
    return exp.In(this=e, expressions=[num(v) for v in vals])


def in_query(e: exp.Expression, query: exp.Query) -> exp.Expression:
    return exp.In(this=e, query=exp.Subquery(this=query))


def and_(*conds: exp.Expression | None) -> exp.Expression:
    parts = [c for c in conds if c is not None]
    if not parts:
        return exp.true()
    return exp.and_(*parts, copy=False) if len(parts) > 1 else parts[0]  # type: ignore[return-value]


def or_(*conds: exp.Expression | None) -> exp.Expression:
    parts = [c for c in conds if c is not None]
    if not parts:
        return exp.false()
    return exp.or_(*parts, copy=False) if len(parts) > 1 else parts[0]  # type: ignore[return-value]


def flag(cond: exp.Expression) -> exp.Expression:
    """1 when cond is true, else 0 (NULL counts as false): portable to dialects without
    a boolean type."""
    return exp.Case(
        ifs=[exp.If(this=cond, true=exp.Literal.number(1))], default=exp.Literal.number(0)
    )


def case(
    cond: exp.Expression, then: exp.Expression, default: exp.Expression | None = None
) -> exp.Case:
    return exp.Case(ifs=[exp.If(this=cond, true=then)], default=default)


def ordered(e: exp.Expression, desc: bool = False, nulls_first: bool = False) -> exp.Ordered:
    return exp.Ordered(this=e, desc=desc, nulls_first=nulls_first)


def window(
    func: exp.Expression,
    partition: Sequence[exp.Expression] = (),
    order: Sequence[exp.Ordered] = (),
    frame: str | None = None,
) -> exp.Window:
    """`func OVER (PARTITION BY ... ORDER BY ... [frame])`; frame is "running" (unbounded
    preceding to current row) or "before" (unbounded preceding to 1 preceding)."""
    spec = None
    if frame == "running":
        spec = exp.WindowSpec(
            kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"
        )
    elif frame == "before":
        spec = exp.WindowSpec(
            kind="ROWS",
            start="UNBOUNDED",
            start_side="PRECEDING",
            end=exp.Literal.number(1),
            end_side="PRECEDING",
        )
    return exp.Window(
        this=func,
        partition_by=list(partition) or None,
        order=exp.Order(expressions=list(order)) if order else None,
        spec=spec,
    )


def count_star() -> exp.Expression:
    return exp.Count(this=exp.Star())


def count_distinct(e: exp.Expression) -> exp.Expression:
    return exp.Count(this=exp.Distinct(expressions=[e]))


def select(*cols: exp.Expression) -> exp.Select:
    return exp.Select(expressions=list(cols))
