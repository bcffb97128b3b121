"""A seeded synthetic OMOP CDM v5.4, written as Eunomia-style CSV files (one per table).

`generate_cdm(config)` draws the rows in memory; `write_csv(cdm, folder)` writes one
`<table>.csv` per CDM table (comma-separated, header row, ISO dates, the columns exactly as
declared in `passerelle.cdm.schema`; tables the demo does not fill get a header only, so a
`--replace` load empties them). Same configuration -> byte-identical files.

Each person's history is drawn from its own `random.Random` seeded by (seed, site, person
number), so the first 300 persons of a 3,000-person CDM are the 300 persons of a 300-person one.
Every id of a site is `id_offset` + a local number: sites generated with different offsets
(see `site_offset`) have disjoint person, visit and event ids.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from passerelle.cdm.schema import TABLES
from passerelle.demo import vocabulary as v
from passerelle.demo.patients import ERA_GAP_DAYS, Event, History, simulate
from passerelle.errors import ConfigError

SITE_ID_STRIDE = 100_000_000

# (city, postal code, department) of the demo's patients: a few French cities.
CITIES: tuple[tuple[str, str, str], ...] = (
    ("Paris", "75013", "75"),
    ("Paris", "75018", "75"),
    ("Créteil", "94000", "94"),
    ("Saint-Denis", "93200", "93"),
    ("Lyon", "69003", "69"),
    ("Villeurbanne", "69100", "69"),
    ("Marseille", "13005", "13"),
    ("Toulouse", "31000", "31"),
    ("Bordeaux", "33000", "33"),
    ("Lille", "59000", "59"),
    ("Nantes", "44000", "44"),
    ("Strasbourg", "67000", "67"),
)

EVENT_TABLES = {
    "condition": "condition_occurrence",
    "drug": "drug_exposure",
    "procedure": "procedure_occurrence",
    "measurement": "measurement",
    "observation": "observation",
}


def site_offset(index: int) -> int:
    """The id offset of the `index`-th site (0, 1, 2, ...): ids never collide across sites."""
    return index * SITE_ID_STRIDE


@dataclass(frozen=True)
class SyntheticConfig:
    n_persons: int = 3000
    seed: int = 42
    site: str = "demo"
    id_offset: int = 0
    start_year: int = 2012
    end_year: int = 2024

    def __post_init__(self) -> None:
        if not 1 <= self.n_persons < SITE_ID_STRIDE // 1000:
            raise ConfigError(f"persons must be between 1 and {SITE_ID_STRIDE // 1000 - 1:,}")
        if self.id_offset < 0:
            raise ConfigError("the id offset must not be negative")
        if not 1950 <= self.start_year <= self.end_year - 3:
            raise ConfigError("the years must span at least 4 years, from 1950 on")
        if not self.site.strip():
            raise ConfigError("the site name must not be empty")

    @property
    def window(self) -> tuple[date, date]:
        return date(self.start_year, 1, 1), date(self.end_year, 12, 31)


def site_configs(
    sites: Sequence[str], n_persons: int = 3000, seed: int = 42, **years: int
) -> list[SyntheticConfig]:
    """One configuration per hospital: site i gets `site_offset(i)`, so ids never collide, and
    the site name enters each person's seed, so the hospitals have different patients."""
    return [
        SyntheticConfig(n_persons, seed, site, site_offset(i), **years)
        for i, site in enumerate(sites)
    ]


@dataclass
class SyntheticCdm:
    config: SyntheticConfig
    tables: dict[str, list[dict[str, object]]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Rows per CDM table, every table included (0 for the ones not generated)."""
        return {t.name: len(self.tables.get(t.name, ())) for t in TABLES}


class _Ids:
    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.last: dict[str, int] = defaultdict(int)

    def next(self, table: str) -> int:
        self.last[table] += 1
        return self.offset + self.last[table]


def generate_cdm(config: SyntheticConfig) -> SyntheticCdm:
    """Draw the whole synthetic CDM of one site in memory."""
    cdm = SyntheticCdm(config)
    t: dict[str, list[dict[str, object]]] = defaultdict(list)
    ids = _Ids(config.id_offset)
    care_site_id = config.id_offset + 1
    location_ids = [config.id_offset + i + 1 for i in range(len(CITIES))]
    for (city, zip_code, dept), loc_id in zip(CITIES, location_ids, strict=True):
        t["location"].append(
            {
                "location_id": loc_id,
                "city": city,
                "zip": zip_code,
                "county": dept,
                "location_source_value": zip_code,
                "country_source_value": "FR",
            }
        )
    t["care_site"].append(
        {
            "care_site_id": care_site_id,
            "care_site_name": config.site[:255],
            "location_id": location_ids[0],
            "care_site_source_value": config.site[:50],
        }
    )
    for i in range(1, config.n_persons + 1):
        rng = random.Random(f"{config.seed}/{config.site}/{i}")
        history = simulate(rng, config.window, len(CITIES))
        person_id = config.id_offset + i
        _person_rows(t, ids, history, person_id, care_site_id, location_ids, config.site)
    _eras(t, ids)
    t.update(v.vocabulary_rows())
    t["cdm_source"].append(_cdm_source(config))
    cdm.tables = dict(t)
    return cdm


def _person_rows(
    t: dict[str, list[dict[str, object]]],
    ids: _Ids,
    h: History,
    person_id: int,
    care_site_id: int,
    location_ids: list[int],
    site: str,
) -> None:
    gender_code = "M" if h.gender == v.MALE else "F"
    t["person"].append(
        {
            "person_id": person_id,
            "gender_concept_id": h.gender,
            "year_of_birth": h.birth.year,
            "month_of_birth": h.birth.month,
            "day_of_birth": h.birth.day,
            "birth_datetime": datetime(*h.birth.timetuple()[:3]),
            "race_concept_id": h.race,
            "ethnicity_concept_id": h.ethnicity,
            "location_id": location_ids[h.location],
            "care_site_id": care_site_id,
            "person_source_value": f"{site[:30]}-{person_id}",
            "gender_source_value": gender_code,
            "gender_source_concept_id": 0,
            "race_source_value": v.CONCEPTS_BY_ID[h.race].name if h.race else None,
            "race_source_concept_id": 0,
            "ethnicity_source_value": v.CONCEPTS_BY_ID[h.ethnicity].code if h.ethnicity else None,
            "ethnicity_source_concept_id": 0,
        }
    )
    for s, e in h.periods:
        t["observation_period"].append(
            {
                "observation_period_id": ids.next("observation_period"),
                "person_id": person_id,
                "observation_period_start_date": s,
                "observation_period_end_date": e,
                "period_type_concept_id": v.EHR,
            }
        )
    death_day = h.death[0] if h.death else None
    visit_ids: dict[int, int] = {}
    previous: int | None = None
    order = sorted(range(len(h.visits)), key=lambda k: (h.visits[k].start, h.visits[k].kind))
    for k in order:
        vis = h.visits[k]
        if death_day and vis.start > death_day:
            continue
        vid = visit_ids[k] = ids.next("visit_occurrence")
        t["visit_occurrence"].append(
            {
                "visit_occurrence_id": vid,
                "person_id": person_id,
                "visit_concept_id": vis.kind,
                "visit_start_date": vis.start,
                "visit_end_date": vis.end,
                "visit_type_concept_id": v.EHR,
                "care_site_id": care_site_id,
                "visit_source_value": v.CONCEPTS_BY_ID[vis.kind].code,
                "visit_source_concept_id": 0,
                "preceding_visit_occurrence_id": previous,
            }
        )
        previous = vid
    for ev in sorted(h.events, key=lambda e: (e.start, e.domain, e.concept)):
        table = EVENT_TABLES[ev.domain]
        visit_id = visit_ids.get(ev.visit) if ev.visit is not None else None
        t[table].append(_event_row(ev, ids.next(table), person_id, visit_id))
    if h.death:
        day, cause = h.death
        t["death"].append(
            {
                "person_id": person_id,
                "death_date": day,
                "death_type_concept_id": v.EHR,
                "cause_concept_id": cause,
                "cause_source_value": v.CONCEPTS_BY_ID[cause].code if cause else None,
                "cause_source_concept_id": 0,
            }
        )


def _event_row(ev: Event, row_id: int, person_id: int, visit_id: int | None) -> dict[str, object]:
    common = {"person_id": person_id, "visit_occurrence_id": visit_id}
    if ev.domain == "condition":
        return {
            "condition_occurrence_id": row_id,
            **common,
            "condition_concept_id": ev.concept,
            "condition_start_date": ev.start,
            "condition_end_date": ev.end,
            "condition_type_concept_id": v.EHR,
            "condition_source_value": ev.source_value or v.CONCEPTS_BY_ID[ev.concept].code,
            "condition_source_concept_id": ev.source_concept or 0,
        }
    if ev.domain == "drug":
        return {
            "drug_exposure_id": row_id,
            **common,
            "drug_concept_id": ev.concept,
            "drug_exposure_start_date": ev.start,
            "drug_exposure_end_date": ev.end,
            "drug_type_concept_id": v.EHR,
            "refills": 0,
            "quantity": ev.quantity,
            "days_supply": ev.days_supply,
            "drug_source_value": ev.source_value,
            "drug_source_concept_id": ev.source_concept or 0,
        }
    if ev.domain == "procedure":
        return {
            "procedure_occurrence_id": row_id,
            **common,
            "procedure_concept_id": ev.concept,
            "procedure_date": ev.start,
            "procedure_type_concept_id": v.EHR,
            "procedure_source_value": v.CONCEPTS_BY_ID[ev.concept].code,
            "procedure_source_concept_id": 0,
        }
    if ev.domain == "measurement":
        unit = ev.unit or v.NO_MATCH
        low_high = (4.0, 5.6) if ev.concept == v.HBA1C else (None, None)
        return {
            "measurement_id": row_id,
            **common,
            "measurement_concept_id": ev.concept,
            "measurement_date": ev.start,
            "measurement_type_concept_id": v.EHR,
            "value_as_number": ev.value,
            "unit_concept_id": unit,
            "range_low": low_high[0],
            "range_high": low_high[1],
            "measurement_source_value": ev.source_value,
            "measurement_source_concept_id": 0,
            "unit_source_value": v.CONCEPTS_BY_ID[unit].code if unit else None,
        }
    return {
        "observation_id": row_id,
        **common,
        "observation_concept_id": ev.concept,
        "observation_date": ev.start,
        "observation_type_concept_id": v.EHR,
        "observation_source_value": ev.source_value or v.CONCEPTS_BY_ID[ev.concept].code,
        "observation_source_concept_id": 0,
    }


def _collapse(spans: list[tuple[date, date]]) -> list[tuple[date, date, int, int]]:
    """Merge spans whose gap is at most ERA_GAP_DAYS: (start, end, count, gap days)."""
    eras: list[tuple[date, date, int, int]] = []
    for s, e in sorted(spans):
        if eras and (s - eras[-1][1]).days <= ERA_GAP_DAYS:
            start, end, n, gap = eras[-1]
            gap += max(0, (s - end).days - 1)
            eras[-1] = (start, max(end, e), n + 1, gap)
        else:
            eras.append((s, e, 1, 0))
    return eras


def _eras(t: dict[str, list[dict[str, object]]], ids: _Ids) -> None:
    """drug_era (per ingredient) and condition_era (per concept), 30-day persistence window."""
    drugs: dict[tuple[int, int], list[tuple[date, date]]] = defaultdict(list)
    for r in t["drug_exposure"]:
        key = (int(r["person_id"]), v.INGREDIENT_OF[int(r["drug_concept_id"])])  # type: ignore[call-overload]
        drugs[key].append((r["drug_exposure_start_date"], r["drug_exposure_end_date"]))  # type: ignore[arg-type]
    for (person_id, ingredient), spans in sorted(drugs.items()):
        for s, e, n, gap in _collapse(spans):
            t["drug_era"].append(
                {
                    "drug_era_id": ids.next("drug_era"),
                    "person_id": person_id,
                    "drug_concept_id": ingredient,
                    "drug_era_start_date": s,
                    "drug_era_end_date": e,
                    "drug_exposure_count": n,
                    "gap_days": gap,
                }
            )
    conditions: dict[tuple[int, int], list[tuple[date, date]]] = defaultdict(list)
    for r in t["condition_occurrence"]:
        start = r["condition_start_date"]
        key = (int(r["person_id"]), int(r["condition_concept_id"]))  # type: ignore[call-overload]
        conditions[key].append((start, r["condition_end_date"] or start))  # type: ignore[arg-type]
    for (person_id, concept), spans in sorted(conditions.items()):
        for s, e, n, _ in _collapse(spans):
            t["condition_era"].append(
                {
                    "condition_era_id": ids.next("condition_era"),
                    "person_id": person_id,
                    "condition_concept_id": concept,
                    "condition_era_start_date": s,
                    "condition_era_end_date": e,
                    "condition_occurrence_count": n,
                }
            )


def _cdm_source(config: SyntheticConfig) -> dict[str, object]:
    release = date(config.end_year + 1, 1, 1)
    return {
        "cdm_source_name": f"Passerelle synthetic CDM ({config.site[:200]})",
        "cdm_source_abbreviation": config.site[:25],
        "cdm_holder": "Passerelle demo",
        "source_description": (
            f"Synthetic patients generated by passerelle.demo.synthetic: {config.n_persons} "
            f"persons, seed {config.seed}, years {config.start_year}-{config.end_year}. "
            "No real patient data."
        ),
        "source_documentation_reference": "docs/demo.md",
        "cdm_etl_reference": "passerelle/demo/synthetic.py",
        "source_release_date": release,
        "cdm_release_date": release,
        "cdm_version": "5.4",
        "cdm_version_concept_id": v.CDM_V54,
        "vocabulary_version": v.VOCABULARY_VERSION,
    }


def write_csv(cdm: SyntheticCdm, folder: Path) -> dict[str, int]:
    """Write one `<table>.csv` per CDM table into `folder`; return the row counts."""
    folder.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        columns = table.column_names
        known = set(columns)
        rows = cdm.tables.get(table.name, [])
        with (folder / f"{table.name}.csv").open("w", encoding="utf-8", newline="") as fh:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(columns)
            for row in rows:
                if not known.issuperset(row):
                    unknown = sorted(set(row) - known)
                    raise ValueError(f"{table.name}: no column named {', '.join(unknown)}")
                # csv writes None as an empty field and str() of a date is its ISO form.
                out.writerow([row.get(c) for c in columns])
    return cdm.counts()


def generate(folder: Path, config: SyntheticConfig | None = None) -> dict[str, int]:
    """Generate the synthetic CDM of `config` and write it as CSV files into `folder`."""
    return write_csv(generate_cdm(config or SyntheticConfig()), folder)


__all__ = [
    "SITE_ID_STRIDE",
    "SyntheticCdm",
    "SyntheticConfig",
    "generate",
    "generate_cdm",
    "site_configs",
    "site_offset",
    "write_csv",
]
