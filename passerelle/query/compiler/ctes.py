"""An ordered list of common table expressions being built for one statement."""

from __future__ import annotations

from sqlglot import exp


class Ctes:
    def __init__(self) -> None:
        self.items: list[tuple[str, exp.Query]] = []
        self.cache: dict[object, str] = {}

    def add(self, name: str, query: exp.Query) -> str:
        if any(n == name for n, _ in self.items):
            raise ValueError(f"CTE {name} defined twice")
        self.items.append((name, query))
        return name

    def once(self, key: object, prefix: str, build) -> str:  # type: ignore[no-untyped-def]
        """The name of the CTE for `key`, building it (with `build()`) the first time."""
        if key not in self.cache:
            name = f"{prefix}_{len(self.cache) + 1}"
            self.add(name, build())
            self.cache[key] = name
        return self.cache[key]

    def attach(self, final: exp.Query) -> exp.Query:
        for name, query in self.items:
            final = final.with_(name, as_=query, copy=False)
        return final
