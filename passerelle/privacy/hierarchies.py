"""Generalisation hierarchies for quasi-identifiers: each level maps a value to a coarser label.

Level 0 is the value itself; the last level is always "*" (the value withheld). A hierarchy is
built over the *distinct* values of a column, so generalising a million rows costs one array
lookup per level.

| kind          | levels                                                                   |
|---------------|--------------------------------------------------------------------------|
| `age`         | exact, then one level per band width (default 5, 10, 20 years: "40-44")   |
| `bands`       | the same for any integer (`bands: [10, 100]`)                            |
| `date`        | day, month "2020-03", quarter "2020-Q1", year "2020"                     |
| `postal_code` | French code postal, département ("75", "2A", "974"), region (INSEE code) |
| `category`    | value, rare values (fewer than k persons) merged into "other"            |
| `generic`     | value                                                                    |
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

TOP = "*"
MISSING = "(missing)"
OTHER = "other"


class Kind(StrEnum):
    age = "age"
    bands = "bands"
    date = "date"
    postal_code = "postal_code"
    category = "category"
    generic = "generic"


#: INSEE region code of each département (regions of 2016; overseas regions 01-06).
REGION_OF_DEPARTEMENT: dict[str, str] = {
    **dict.fromkeys(("75", "77", "78", "91", "92", "93", "94", "95"), "11"),
    **dict.fromkeys(("18", "28", "36", "37", "41", "45"), "24"),
    **dict.fromkeys(("21", "25", "39", "58", "70", "71", "89", "90"), "27"),
    **dict.fromkeys(("14", "27", "50", "61", "76"), "28"),
    **dict.fromkeys(("02", "59", "60", "62", "80"), "32"),
    **dict.fromkeys(("08", "10", "51", "52", "54", "55", "57", "67", "68", "88"), "44"),
    **dict.fromkeys(("44", "49", "53", "72", "85"), "52"),
    **dict.fromkeys(("22", "29", "35", "56"), "53"),
    **dict.fromkeys(("16", "17", "19", "23", "24", "33", "40", "47", "64", "79", "86", "87"), "75"),
    **dict.fromkeys(
        ("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82"), "76"
    ),
    **dict.fromkeys(("01", "03", "07", "15", "26", "38", "42", "43", "63", "69", "73", "74"), "84"),
    **dict.fromkeys(("04", "05", "06", "13", "83", "84"), "93"),
    **dict.fromkeys(("2A", "2B"), "94"),
    "971": "01",
    "972": "02",
    "973": "03",
    "974": "04",
    "976": "06",
}


@dataclass(frozen=True)
class QuasiIdentifier:
    column: str
    hierarchy: Kind = Kind.generic
    bands: tuple[int, ...] = (5, 10, 20)
    weight: float = 1.0

    @classmethod
    def parse(cls, data: Any) -> QuasiIdentifier:
        if isinstance(data, str):
            return cls(data)
        data = dict(data)
        column = data.pop("column")
        kind = Kind(data.pop("hierarchy", "generic"))
        bands = tuple(int(b) for b in data.pop("bands", (5, 10, 20)))
        weight = float(data.pop("weight", 1.0))
        if data:
            raise ValueError(f"quasi-identifier {column}: unknown keys {sorted(data)}")
        return cls(column, kind, bands, weight)


@dataclass(frozen=True)
class Levels:
    """Labels of each distinct value at each level (level 0 first, "*" last)."""

    names: tuple[str, ...]
    labels: list[list[str]] = field(repr=False)


def _label0(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def departement(code: Any) -> str:
    if code is None:
        return MISSING
    text = str(code).strip().upper()
    if len(text) == 4 and text.isdigit():  # a code postal stored as an integer: 1000 -> 01000
        text = "0" + text
    if len(text) < 2:
        return OTHER
    if text[:2] == "20":
        return "2A" if text[:5].isdigit() and int(text[:5]) < 20200 else "2B"
    if text[:2] in ("97", "98"):
        return text[:3]
    return text[:2] if text[:2].isdigit() or text[:2] in ("2A", "2B") else OTHER


def _band(value: Any, width: int) -> str:
    if value is None:
        return MISSING
    low = (int(value) // width) * width
    return f"{low}-{low + width - 1}"


def _date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def build_levels(
    qi: QuasiIdentifier, values: Sequence[Any], counts: Sequence[int], k: int
) -> Levels:
    """The hierarchy of `qi` over its distinct `values` (with their row `counts`)."""
    base = [_label0(v) for v in values]
    names: list[str] = ["value"]
    levels: list[list[str]] = [base]
    kind = qi.hierarchy
    if kind in (Kind.age, Kind.bands):
        for width in sorted(set(qi.bands)):
            names.append(f"{width}-band")
            levels.append([_band(v, width) for v in values])
    elif kind is Kind.date:
        dates = [_date(v) for v in values]
        names += ["month", "quarter", "year"]
        levels.append([MISSING if d is None else f"{d.year}-{d.month:02d}" for d in dates])
        levels.append(
            [MISSING if d is None else f"{d.year}-Q{(d.month - 1) // 3 + 1}" for d in dates]
        )
        levels.append([MISSING if d is None else str(d.year) for d in dates])
    elif kind is Kind.postal_code:
        deps = [departement(v) for v in values]
        names += ["departement", "region"]
        levels.append(deps)
        levels.append([REGION_OF_DEPARTEMENT.get(d, OTHER if d != MISSING else d) for d in deps])
    elif kind is Kind.category:
        names.append("rare-merged")
        levels.append([b if c >= k else OTHER for b, c in zip(base, counts, strict=True)])
    names.append("suppressed")
    levels.append([TOP] * len(values))
    return Levels(tuple(names), levels)
