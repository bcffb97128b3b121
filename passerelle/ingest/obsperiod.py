"""observation_period derived per person from the person's events in the store.

Rule: one period per person with at least one event; it starts at the earliest start date
and ends at the latest start or end date among visit_occurrence, condition_occurrence,
drug_exposure, procedure_occurrence, device_exposure, measurement and observation;
period_type_concept_id 32817 (EHR). Recomputed after each run for the persons it touched.
"""

from __future__ import annotations

from collections.abc import Iterable

from passerelle.ingest.concepts import EHR

# (table, start column, end column or None)
EVENT_DATES = (
    ("visit_occurrence", "visit_start_date", "visit_end_date"),
    ("condition_occurrence", "condition_start_date", "condition_end_date"),
    ("drug_exposure", "drug_exposure_start_date", "drug_exposure_end_date"),
    ("procedure_occurrence", "procedure_date", "procedure_end_date"),
    ("device_exposure", "device_exposure_start_date", "device_exposure_end_date"),
    ("measurement", "measurement_date", None),
    ("observation", "observation_date", None),
)


def periods_sql(store) -> str:
    parts = []
    for table, start, end in EVENT_DATES:
        last = f"CASE WHEN {end} > {start} THEN {end} ELSE {start} END" if end else start
        parts.append(f"SELECT person_id, {start} AS s, {last} AS e FROM {store.qualified(table)}")
    union = " UNION ALL ".join(parts)
    return f"SELECT person_id, min(s), max(e) FROM ({union}) ev GROUP BY person_id"


def derive(store, ids, persons: Iterable[int]) -> list[dict]:
    wanted = set(persons)
    rows = []
    for pid, start, end in store.query(periods_sql(store)).rows:
        if pid in wanted and start is not None:
            rows.append(
                {
                    "observation_period_id": ids.id_for("observation_period", str(pid)),
                    "person_id": pid,
                    "observation_period_start_date": start,
                    "observation_period_end_date": end,
                    "period_type_concept_id": EHR,
                }
            )
    return rows
