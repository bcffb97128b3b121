"""Declared facts the checks rely on: which columns hold event dates and codes, and the
plausible value ranges per measurement unit. Thresholds follow DataQualityDashboard's
spirit: structural checks tolerate nothing; mapping coverage tolerates 5 % unmapped."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    table: str
    start: str
    end: str | None
    concept: str | None  # standard concept column
    source_value: str | None
    source_concept: str | None
    domain: str
    in_observation: bool = True  # must lie inside an observation period


EVENTS: tuple[Event, ...] = (
    Event(
        "visit_occurrence",
        "visit_start_date",
        "visit_end_date",
        "visit_concept_id",
        "visit_source_value",
        "visit_source_concept_id",
        "Visit",
    ),
    Event(
        "visit_detail",
        "visit_detail_start_date",
        "visit_detail_end_date",
        "visit_detail_concept_id",
        "visit_detail_source_value",
        "visit_detail_source_concept_id",
        "Visit",
    ),
    Event(
        "condition_occurrence",
        "condition_start_date",
        "condition_end_date",
        "condition_concept_id",
        "condition_source_value",
        "condition_source_concept_id",
        "Condition",
    ),
    Event(
        "drug_exposure",
        "drug_exposure_start_date",
        "drug_exposure_end_date",
        "drug_concept_id",
        "drug_source_value",
        "drug_source_concept_id",
        "Drug",
    ),
    Event(
        "procedure_occurrence",
        "procedure_date",
        "procedure_end_date",
        "procedure_concept_id",
        "procedure_source_value",
        "procedure_source_concept_id",
        "Procedure",
    ),
    Event(
        "device_exposure",
        "device_exposure_start_date",
        "device_exposure_end_date",
        "device_concept_id",
        "device_source_value",
        "device_source_concept_id",
        "Device",
    ),
    Event(
        "measurement",
        "measurement_date",
        None,
        "measurement_concept_id",
        "measurement_source_value",
        "measurement_source_concept_id",
        "Measurement",
    ),
    Event(
        "observation",
        "observation_date",
        None,
        "observation_concept_id",
        "observation_source_value",
        "observation_source_concept_id",
        "Observation",
    ),
    Event(
        "specimen",
        "specimen_date",
        None,
        "specimen_concept_id",
        "specimen_source_value",
        None,
        "Specimen",
    ),
    Event("note", "note_date", None, None, None, None, "Note"),
    Event("death", "death_date", None, None, None, None, "Death", in_observation=False),
)

# Spans whose start must not follow their end (events above plus derived spans).
SPANS: tuple[tuple[str, str, str], ...] = (
    *((e.table, e.start, e.end) for e in EVENTS if e.end),
    ("observation_period", "observation_period_start_date", "observation_period_end_date"),
    ("payer_plan_period", "payer_plan_period_start_date", "payer_plan_period_end_date"),
    ("drug_era", "drug_era_start_date", "drug_era_end_date"),
    ("condition_era", "condition_era_start_date", "condition_era_end_date"),
    ("dose_era", "dose_era_start_date", "dose_era_end_date"),
    ("episode", "episode_start_date", "episode_end_date"),
)

# Plausible measurement values per UCUM unit: (unit code, unit concept id, low, high, label).
UNIT_RANGES: tuple[tuple[str, int, float, float, str], ...] = (
    ("cm", 8582, 20, 250, "length / body height"),
    ("kg", 9529, 0.2, 500, "body weight"),
    ("kg/m2", 9531, 5, 100, "body mass index"),
    ("mm[Hg]", 8876, 10, 300, "blood pressure"),
    ("/min", 8541, 5, 350, "rate per minute"),
    ("Cel", 586323, 25, 45, "body temperature"),
    ("%", 8554, 0, 100, "percentage"),
    ("mg/dL", 8840, 0, 5000, "mass concentration"),
    ("mmol/L", 8753, 0, 500, "molar concentration"),
)

# Days an event may follow death (DataQualityDashboard's plausibleBeforeDeath allowance).
DAYS_AFTER_DEATH = 60
MAX_AGE = 120
THRESHOLD_STRUCTURAL = 0.0
THRESHOLD_UNMAPPED = 5.0
THRESHOLD_VALUE_RANGE = 1.0
