"""A dataset's profile from a node's CDM store, passed through disclosure control.

Counts (persons, records per domain, top concepts) are computed with plain aggregate SQL on
the store, shaped as AggregateTables and released only after the privacy layer's `protect`
(the node's disclosure policy). Years covered come from observation periods.
"""

from __future__ import annotations

from typing import Any

from passerelle.cdm.stores import open_store
from passerelle.query.result import AggregateTable, ResultColumn, StudyResult

# Domain table -> its concept column (records and top concepts are profiled for these).
DOMAIN_CONCEPTS: dict[str, str] = {
    "visit_occurrence": "visit_concept_id",
    "condition_occurrence": "condition_concept_id",
    "drug_exposure": "drug_concept_id",
    "procedure_occurrence": "procedure_concept_id",
    "device_exposure": "device_concept_id",
    "measurement": "measurement_concept_id",
    "observation": "observation_concept_id",
    "death": "cause_concept_id",
}
TOP_N = 10


def _tables(store: Any) -> set[str]:
    counts = store.counts()
    return {name for name, n in counts.items() if n is not None}


def raw_profile(store_url: str) -> tuple[StudyResult, dict[str, Any]]:
    """(count tables to protect, non-count facts such as the years covered)."""
    store = open_store(store_url)
    try:
        have = _tables(store)
        persons = 0
        if "person" in have:
            persons = store.query(f"SELECT COUNT(*) FROM {store.qualified('person')}").rows[0][0]
        per_domain: list[tuple[Any, ...]] = []
        top: list[tuple[Any, ...]] = []
        for table, concept in DOMAIN_CONCEPTS.items():
            if table not in have:
                continue
            q = store.qualified(table)
            records, people = store.query(
                f"SELECT COUNT(*), COUNT(DISTINCT person_id) FROM {q}"
            ).rows[0]
            per_domain.append((table, int(records), int(people)))
            rows = store.query(
                f"SELECT {concept}, COUNT(DISTINCT person_id) AS n FROM {q} "
                f"WHERE {concept} IS NOT NULL AND {concept} <> 0 "
                f"GROUP BY {concept} ORDER BY n DESC, {concept} LIMIT {TOP_N}"
            ).rows
            top.extend((table, int(c), int(n)) for c, n in rows)
        years: dict[str, Any] = {}
        if "observation_period" in have:
            lo, hi = store.query(
                "SELECT MIN(observation_period_start_date), MAX(observation_period_end_date) "
                f"FROM {store.qualified('observation_period')}"
            ).rows[0]
            years = {
                "first_year": getattr(lo, "year", None),
                "last_year": getattr(hi, "year", None),
            }
        names: dict[int, str] = {}
        if "concept" in have and top:
            ids = sorted({c for _, c, _ in top})
            marks = ", ".join(str(int(i)) for i in ids)  # integers from the store, not user text
            names = dict(
                store.query(
                    f"SELECT concept_id, concept_name FROM {store.qualified('concept')} "
                    f"WHERE concept_id IN ({marks})"
                ).rows
            )
        engine = store.engine
    finally:
        store.close()
    tables = [
        AggregateTable("persons", "count", (ResultColumn("persons", "count"),), [(int(persons),)]),
        AggregateTable(
            "records_per_domain",
            "count",
            (
                ResultColumn("domain", "dimension", "string"),
                ResultColumn("records", "count"),
                ResultColumn("persons", "count"),
            ),
            per_domain,
        ),
        AggregateTable(
            "top_concepts",
            "count",
            (
                ResultColumn("domain", "dimension", "string"),
                ResultColumn("concept_id", "dimension"),
                ResultColumn("persons", "count"),
            ),
            top,
        ),
    ]
    facts = {**years, "concept_names": {str(k): v for k, v in names.items()}}
    return StudyResult("dataset-profile", engine, tables), facts


def disclose(result: StudyResult, policy: Any = None) -> StudyResult:
    from passerelle.privacy.disclosure import protect
    from passerelle.privacy.policy import default_policy

    # Each table on its own: they are separate facts, not margins of one another.
    policy = policy or default_policy("catalogue-profile")
    parts = [protect(StudyResult(result.study, result.engine, [t]), policy) for t in result.tables]
    return StudyResult(
        result.study, result.engine, [p.tables[0] for p in parts], policy=parts[0].policy
    )


def released_profile(store_url: str, policy: Any = None) -> dict[str, Any]:
    """The profile as stored in the catalogue: only released (protected) values."""
    raw, facts = raw_profile(store_url)
    safe = disclose(raw, policy)
    names = facts.pop("concept_names")
    t = {table.name: table for table in safe.tables}
    persons = t["persons"].rows[0][0] if t["persons"].rows else None
    return {
        "persons": persons,
        "records_per_domain": [
            {"domain": d, "records": r, "persons": p} for d, r, p in t["records_per_domain"].rows
        ],
        "top_concepts": [
            {"domain": d, "concept_id": c, "concept_name": names.get(str(c), ""), "persons": n}
            for d, c, n in t["top_concepts"].rows
            if n is not None
        ],
        **facts,
        "policy": safe.policy,
    }
