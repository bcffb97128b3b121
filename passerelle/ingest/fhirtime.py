"""FHIR date / dateTime / instant values → (date, naive datetime).

The wall-clock time is kept as written (the offset is dropped), as OHDSI ETL-Synthea does.
Partial dates (`2013`, `2013-04`) become the first day of the period.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta


class BadDate(ValueError):
    """A value that is not a FHIR date or dateTime (its text is never put in a message)."""


_CACHE: dict[str, tuple[date, datetime | None]] = {}


def parse(value: object) -> tuple[date, datetime | None]:
    hit = _CACHE.get(value) if isinstance(value, str) else None
    if hit is None:
        hit = _parse(value)
        if len(_CACHE) >= 20_000:
            _CACHE.clear()
        _CACHE[value] = hit  # type: ignore[index]
    return hit


def _parse(value: object) -> tuple[date, datetime | None]:
    if not isinstance(value, str) or len(value) < 4:
        raise BadDate
    try:
        n = len(value)
        if n >= 10:
            d = date(int(value[0:4]), int(value[5:7]), int(value[8:10]))
            if n >= 19 and value[10] == "T":
                return d, datetime(
                    d.year, d.month, d.day, int(value[11:13]), int(value[14:16]), int(value[17:19])
                )
            if n == 10:
                return d, None
            raise BadDate
        if n == 7:
            return date(int(value[0:4]), int(value[5:7]), 1), None
        if n == 4:
            return date(int(value), 1, 1), None
    except (ValueError, IndexError):
        raise BadDate from None
    raise BadDate


def plus_days(d: date, days: int) -> date:
    return d + timedelta(days=days)
