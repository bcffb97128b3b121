"""Which mapper handles which FHIR resource type."""

from __future__ import annotations

from passerelle.ingest import fhir_events as E
from passerelle.ingest import fhir_therapy as T
from passerelle.ingest.fhir_directory import DIRECTORY_MAPPERS

EVENT_MAPPERS = {
    "Encounter": E.encounter,
    "Condition": E.condition,
    "Observation": E.observation,
    "AllergyIntolerance": E.allergy,
    "MedicationRequest": T.medication_request,
    "MedicationStatement": T.medication_statement,
    "MedicationAdministration": T.medication_administration,
    "Immunization": T.immunization,
    "Procedure": T.procedure,
    "ImagingStudy": T.imaging_study,
    "Device": T.device,
    "DeviceUseStatement": T.device_use,
}
MAPPED_TYPES = frozenset(EVENT_MAPPERS) | frozenset(DIRECTORY_MAPPERS)
# Statuses that mean "this did not happen": read, counted as skipped, no row.
SKIPPED_STATUSES = frozenset({"entered-in-error", "not-done"})

__all__ = ["DIRECTORY_MAPPERS", "EVENT_MAPPERS", "MAPPED_TYPES", "SKIPPED_STATUSES"]
