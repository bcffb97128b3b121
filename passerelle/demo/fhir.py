"""Synthetic hospitals as FHIR R4 Bulk Data NDJSON (one file per resource type).

Each hospital's patients are drawn with the same clinical simulation as the synthetic CDM
(`passerelle.demo.patients.simulate`: diseases, treatments, values, visits, deaths), then
written as the FHIR resources a hospital's EHR export would hold: Organization, Patient (with
a French commune and postal code), Encounter, Condition, Observation (LOINC codes, UCUM
units; smoking and obesity as social-history findings), MedicationRequest (RxNorm, or the
NDC code the pharmacy recorded), Procedure (SNOMED) and Immunization (CVX). Every code is in
the demo vocabulary (`passerelle.demo.vocabulary`), so the ingest maps every record to a
standard concept through 'Maps to'.

Seeded and deterministic: the same (seed, hospital, persons) gives byte-identical files; each
person's history comes from a `random.Random` seeded by (seed, site, person number), and the
vaccinations from a second one, so the clinical history is the CDM generator's.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from passerelle.demo import vocabulary as v
from passerelle.demo.patients import Event, History, simulate
from passerelle.errors import ConfigError

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"

SYSTEM_OF_VOCABULARY = {
    "SNOMED": SNOMED,
    "LOINC": LOINC,
    "RxNorm": RXNORM,
    "NDC": NDC,
    "ICD10CM": ICD10CM,
    "CVX": CVX,
}
ENCOUNTER_CLASS = {v.INPATIENT: "IMP", v.OUTPATIENT: "AMB", v.EMERGENCY: "EMER"}
VITAL_SIGNS = frozenset({v.SYSTOLIC_BP, v.DIASTOLIC_BP, v.BODY_WEIGHT, v.BMI})

# Vaccinations (Santé publique France coverage figures, rounded): seasonal influenza for 65+
# (about 52 % a season), or for a chronic disease under 65 (about 30 %); one pneumococcal
# PPSV23 dose for 20 % of persons with COPD or diabetes.
FLU_COVERAGE_65 = 0.52
FLU_COVERAGE_AT_RISK = 0.30
PNEUMO_COVERAGE_AT_RISK = 0.20
AT_RISK = frozenset({v.T2DM, v.COPD, v.EMPHYSEMA, v.CORONARY_ATHEROSCLEROSIS})
RESOURCE_TYPES = (
    "Organization",
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Procedure",
    "Immunization",
)

FAMILY = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
          "Leroy", "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David",
          "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "Andre", "Mercier")  # fmt: skip
GIVEN_F = ("Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Monique",
           "Sophie", "Camille", "Léa", "Chloé", "Manon", "Inès", "Sarah")  # fmt: skip
GIVEN_M = ("Jean", "Pierre", "Michel", "Philippe", "Alain", "Nicolas", "Christophe",
           "Patrick", "Thomas", "Lucas", "Hugo", "Karim", "Mehdi", "Antoine")  # fmt: skip


@dataclass(frozen=True)
class Commune:
    name: str
    postal_code: str
    insee: str  # code officiel géographique of the commune
    department: str  # département code
    department_name: str


@dataclass(frozen=True)
class Hospital:
    """One synthetic hospital: its organisation name, node name (a slug of the name, what the
    web pages expect) and the communes its patients live in (real INSEE codes)."""

    name: str
    node: str
    city: str
    communes: tuple[Commune, ...]


HOSPITALS: tuple[Hospital, ...] = (
    Hospital(
        "CHU Nord",
        "chu-nord",
        "Lille",
        (
            Commune("Lille", "59000", "59350", "59", "Nord"),
            Commune("Roubaix", "59100", "59512", "59", "Nord"),
            Commune("Tourcoing", "59200", "59599", "59", "Nord"),
            Commune("Villeneuve-d'Ascq", "59650", "59009", "59", "Nord"),
            Commune("Arras", "62000", "62041", "62", "Pas-de-Calais"),
            Commune("Lens", "62300", "62498", "62", "Pas-de-Calais"),
            Commune("Amiens", "80000", "80021", "80", "Somme"),
        ),
    ),
    Hospital(
        "CHU Sud",
        "chu-sud",
        "Marseille",
        (
            Commune("Marseille", "13005", "13205", "13", "Bouches-du-Rhône"),
            Commune("Aix-en-Provence", "13100", "13001", "13", "Bouches-du-Rhône"),
            Commune("Toulon", "83000", "83137", "83", "Var"),
            Commune("Nice", "06000", "06088", "06", "Alpes-Maritimes"),
            Commune("Avignon", "84000", "84007", "84", "Vaucluse"),
            Commune("Montpellier", "34000", "34172", "34", "Hérault"),
            Commune("Nîmes", "30000", "30189", "30", "Gard"),
        ),
    ),
    Hospital(
        "CHU Ouest",
        "chu-ouest",
        "Nantes",
        (
            Commune("Nantes", "44000", "44109", "44", "Loire-Atlantique"),
            Commune("Saint-Nazaire", "44600", "44184", "44", "Loire-Atlantique"),
            Commune("Rennes", "35000", "35238", "35", "Ille-et-Vilaine"),
            Commune("Angers", "49000", "49007", "49", "Maine-et-Loire"),
            Commune("Brest", "29200", "29019", "29", "Finistère"),
            Commune("Vannes", "56000", "56260", "56", "Morbihan"),
            Commune("La Roche-sur-Yon", "85000", "85191", "85", "Vendée"),
        ),
    ),
)
HOSPITALS_BY_NODE = {h.node: h for h in HOSPITALS}


@dataclass(frozen=True)
class FhirConfig:
    hospital: Hospital
    n_persons: int = 1000
    seed: int = 42
    start_year: int = 2012
    end_year: int = 2024

    def __post_init__(self) -> None:
        if not 1 <= self.n_persons <= 1_000_000:
            raise ConfigError("persons must be between 1 and 1,000,000")
        if not 1950 <= self.start_year <= self.end_year - 3:
            raise ConfigError("the years must span at least 4 years, from 1950 on")

    @property
    def window(self) -> tuple[date, date]:
        return date(self.start_year, 1, 1), date(self.end_year, 12, 31)


def coding(concept_id: int) -> dict[str, str]:
    c = v.CONCEPTS_BY_ID[concept_id]
    return {"system": SYSTEM_OF_VOCABULARY[c.vocabulary], "code": c.code, "display": c.name}


def codeable(concept_id: int, source_concept: int | None = None) -> dict[str, Any]:
    """The code the hospital recorded: the source code (ICD-10-CM, NDC) when there is one,
    else the standard SNOMED / LOINC / RxNorm / CVX code."""
    chosen = source_concept or concept_id
    c = coding(chosen)
    return {"coding": [c], "text": c["display"]}


def _ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"{kind}/{rid}"}


class _Person:
    """Turns one simulated History into FHIR resources."""

    def __init__(self, cfg: FhirConfig, number: int, h: History) -> None:
        self.cfg, self.h = cfg, h
        self.pid = f"{cfg.hospital.node}-p{number}"
        self.org = _ref("Organization", f"{cfg.hospital.node}-org")
        self.subject = _ref("Patient", self.pid)
        self.imm_rng = random.Random(f"{cfg.seed}/{cfg.hospital.node}/{number}/immunization")
        self.death = h.death[0] if h.death else None
        self.encounter_ids: dict[int, str] = {}
        self.counter = 0

    def _id(self, kind: str) -> str:
        self.counter += 1
        return f"{self.pid}-{kind}{self.counter}"

    def resources(self) -> Iterator[dict[str, Any]]:
        yield self.patient()
        order = sorted(range(len(self.h.visits)), key=lambda k: (self.h.visits[k].start, k))
        for k in order:
            vis = self.h.visits[k]
            if self.death and vis.start > self.death:
                continue
            self.encounter_ids[k] = self._id("e")
            yield {
                "resourceType": "Encounter",
                "id": self.encounter_ids[k],
                "status": "finished",
                "class": {"system": ACT_CODE, "code": ENCOUNTER_CLASS[vis.kind]},
                "subject": self.subject,
                "serviceProvider": self.org,
                "period": {"start": vis.start.isoformat(), "end": vis.end.isoformat()},
            }
        for ev in sorted(self.h.events, key=lambda e: (e.start, e.domain, e.concept)):
            yield self.event(ev)
        yield from self.immunizations()

    def patient(self) -> dict[str, Any]:
        h, rng = self.h, random.Random(f"{self.cfg.seed}/{self.pid}/name")
        female = h.gender == v.FEMALE
        commune = self.cfg.hospital.communes[h.location]
        res: dict[str, Any] = {
            "resourceType": "Patient",
            "id": self.pid,
            "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.7", "value": f"IPP{self.pid}"}],
            "name": [
                {
                    "family": rng.choice(FAMILY),
                    "given": [rng.choice(GIVEN_F if female else GIVEN_M)],
                }
            ],
            "gender": "female" if female else "male",
            "birthDate": h.birth.isoformat(),
            "address": [
                {
                    "city": commune.name,
                    "district": commune.department_name,
                    "postalCode": commune.postal_code,
                    "country": "FR",
                    "extension": [
                        {
                            "url": "https://demo.passerelle.example/fhir/commune-insee",
                            "valueString": commune.insee,
                        }
                    ],
                }
            ],
            "managingOrganization": self.org,
        }
        if self.death:
            res["deceasedDateTime"] = self.death.isoformat()
        return res

    def _encounter(self, ev: Event) -> dict[str, str] | None:
        if ev.visit is None or ev.visit not in self.encounter_ids:
            return None
        return _ref("Encounter", self.encounter_ids[ev.visit])

    def event(self, ev: Event) -> dict[str, Any]:
        enc = self._encounter(ev)
        res = getattr(self, f"_{ev.domain}")(ev)
        if enc:
            res["encounter"] = enc
        return res

    def _condition(self, ev: Event) -> dict[str, Any]:
        res: dict[str, Any] = {
            "resourceType": "Condition",
            "id": self._id("c"),
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "resolved" if ev.end else "active",
                    }
                ]
            },
            "category": [{"coding": [{"system": COND_CATEGORY, "code": "encounter-diagnosis"}]}],
            "code": codeable(ev.concept, ev.source_concept),
            "subject": self.subject,
            "onsetDateTime": ev.start.isoformat(),
        }
        if ev.end:
            res["abatementDateTime"] = ev.end.isoformat()
        return res

    def _drug(self, ev: Event) -> dict[str, Any]:
        res: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": self._id("m"),
            "status": "completed",
            "intent": "order",
            "medicationCodeableConcept": codeable(ev.concept, ev.source_concept),
            "subject": self.subject,
            "authoredOn": ev.start.isoformat(),
        }
        if ev.days_supply:
            res["dispenseRequest"] = {
                "expectedSupplyDuration": {
                    "value": ev.days_supply,
                    "unit": "days",
                    "system": UCUM,
                    "code": "d",
                },
                "quantity": {"value": ev.quantity or ev.days_supply},
            }
        return res

    def _procedure(self, ev: Event) -> dict[str, Any]:
        return {
            "resourceType": "Procedure",
            "id": self._id("pr"),
            "status": "completed",
            "code": codeable(ev.concept),
            "subject": self.subject,
            "performedDateTime": ev.start.isoformat(),
        }

    def _measurement(self, ev: Event) -> dict[str, Any]:
        category = "vital-signs" if ev.concept in VITAL_SIGNS else "laboratory"
        quantity: dict[str, Any] = {"value": ev.value}
        if ev.unit:
            unit = v.CONCEPTS_BY_ID[ev.unit]
            quantity.update(unit=unit.code, system=UCUM, code=unit.code)
        res: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self._id("o"),
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
            "code": codeable(ev.concept),
            "subject": self.subject,
            "effectiveDateTime": ev.start.isoformat(),
            "valueQuantity": quantity,
        }
        if ev.concept == v.HBA1C:
            res["referenceRange"] = [{"low": {"value": 4.0}, "high": {"value": 5.6}}]
        return res

    def _observation(self, ev: Event) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "id": self._id("o"),
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": "social-history"}]}],
            "code": codeable(ev.concept),
            "subject": self.subject,
            "effectiveDateTime": ev.start.isoformat(),
        }

    def immunizations(self) -> Iterator[dict[str, Any]]:
        h, rng = self.h, self.imm_rng
        diagnosed = {ev.concept: ev.start for ev in h.events if ev.domain == "condition"}
        at_risk_since = min((d for c, d in diagnosed.items() if c in AT_RISK), default=None)
        for start, end in h.periods:
            for year in range(start.year, end.year + 1):
                day = date(year, 10, 15) + timedelta(days=rng.randint(0, 75))
                if not start <= day <= end or (self.death and day > self.death):
                    continue
                age = year - h.birth.year
                risk = at_risk_since is not None and at_risk_since <= day
                p = FLU_COVERAGE_65 if age >= 65 else FLU_COVERAGE_AT_RISK if risk else 0.0
                if rng.random() < p:
                    yield self._immunization(v.FLU_VACCINE, day)
        if at_risk_since and rng.random() < PNEUMO_COVERAGE_AT_RISK:
            day = at_risk_since + timedelta(days=rng.randint(14, 180))
            if any(s <= day <= e for s, e in h.periods) and not (self.death and day > self.death):
                yield self._immunization(v.PNEUMO_VACCINE, day)

    def _immunization(self, concept: int, day: date) -> dict[str, Any]:
        return {
            "resourceType": "Immunization",
            "id": self._id("i"),
            "status": "completed",
            "vaccineCode": codeable(concept),
            "patient": self.subject,
            "occurrenceDateTime": day.isoformat(),
            "doseQuantity": {"value": 0.5, "unit": "mL", "system": UCUM, "code": "mL"},
        }


def organization(hospital: Hospital) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": f"{hospital.node}-org",
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "prov",
                    }
                ]
            }
        ],
        "name": hospital.name,
        "address": [
            {
                "city": hospital.city,
                "postalCode": hospital.communes[0].postal_code,
                "country": "FR",
            }
        ],
    }


def generate_resources(cfg: FhirConfig) -> Iterator[dict[str, Any]]:
    """Every resource of the hospital, the Organization first, then person by person."""
    yield organization(cfg.hospital)
    n_communes = len(cfg.hospital.communes)
    for i in range(1, cfg.n_persons + 1):
        rng = random.Random(f"{cfg.seed}/{cfg.hospital.node}/{i}")
        yield from _Person(cfg, i, simulate(rng, cfg.window, n_communes)).resources()


def write_ndjson(cfg: FhirConfig, folder: Path) -> dict[str, int]:
    """Write `<Type>.ndjson` files (FHIR Bulk Data layout) into `folder`; resources per type.

    Earlier NDJSON files of these types in the folder are replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    handles = {t: (folder / f"{t}.ndjson").open("w", encoding="utf-8") for t in RESOURCE_TYPES}
    counts = dict.fromkeys(RESOURCE_TYPES, 0)
    try:
        for res in generate_resources(cfg):
            t = res["resourceType"]
            handles[t].write(json.dumps(res, ensure_ascii=False, separators=(",", ":")) + "\n")
            counts[t] += 1
    finally:
        for fh in handles.values():
            fh.close()
    return counts
