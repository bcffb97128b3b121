"""Concept search over the vocabulary of this server's CDM store (by name, code or id).

User text reaches SQL only as bound parameters; the placeholder is the store engine's own
(an explicit table, not a branch on the dialect).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from passerelle.cdm.stores import open_store

PLACEHOLDER = {"duckdb": "?", "postgres": "%s", "spark": "?"}
MAX_RESULTS = 20


@dataclass(frozen=True)
class Concept:
    concept_id: int
    name: str
    domain: str
    vocabulary: str
    code: str
    standard: bool

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class Vocabulary:
    """One store connection per process, opened on first use, searched under a lock."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url
        self._store: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        if self._store is None:
            store = open_store(self.store_url)
            store.connect()
            self._store = store
        return self._store

    def search(self, text: str, domain: str = "", limit: int = MAX_RESULTS) -> list[Concept]:
        text = text.strip()[:100]
        if len(text) < 2:
            return []
        with self._lock:
            try:
                store = self._open()
            except Exception:  # no store or no vocabulary on this server: nothing to suggest
                return []
            ph = PLACEHOLDER.get(store.engine, "?")
            params: list[Any] = [f"%{text.lower()}%", text, text]
            sql = (
                "SELECT concept_id, concept_name, domain_id, vocabulary_id, concept_code, "
                f"standard_concept FROM {store.qualified('concept')} "
                f"WHERE (lower(concept_name) LIKE {ph} OR concept_code = {ph} "
                f"OR CAST(concept_id AS VARCHAR(20)) = {ph})"
            )
            if domain:
                sql += f" AND lower(domain_id) = {ph}"
                params.append(domain.lower())
            sql += (
                " ORDER BY CASE WHEN standard_concept = 'S' THEN 0 ELSE 1 END, "
                f"length(concept_name), concept_id LIMIT {int(limit)}"
            )
            try:
                rows = store.query(sql, params).rows
            except Exception:
                return []
        return [
            Concept(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), r[5] == "S")
            for r in rows
        ]

    def names(self, ids: list[int]) -> dict[int, str]:
        if not ids:
            return {}
        with self._lock:
            try:
                store = self._open()
                marks = ", ".join(str(int(i)) for i in ids[:200])  # integers, not user text
                rows = store.query(
                    f"SELECT concept_id, concept_name FROM {store.qualified('concept')} "
                    f"WHERE concept_id IN ({marks})"
                ).rows
            except Exception:
                return {}
        return {int(a): str(b) for a, b in rows}

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
