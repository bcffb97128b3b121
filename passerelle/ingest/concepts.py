"""Fixed OMOP concept ids the FHIR mapping uses (standard concepts of the Gender, Race,
Ethnicity, Visit, Type Concept and Meas Value Operator vocabularies)."""

from __future__ import annotations

GENDER = {"male": 8507, "female": 8532}

# US Core race / ethnicity OMB categories (urn:oid:2.16.840.1.113883.6.238) → OMOP.
RACE = {
    "2106-3": 8527,  # White
    "2054-5": 8516,  # Black or African American
    "2028-9": 8515,  # Asian
    "1002-5": 8657,  # American Indian or Alaska Native
    "2076-8": 8557,  # Native Hawaiian or Other Pacific Islander
}
ETHNICITY = {"2135-2": 38003563, "2186-5": 38003564}  # Hispanic / Not Hispanic
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"

# Encounter.class (v3 ActCode) → visit concept.
VISIT_CLASS = {
    "IMP": 9201,  # Inpatient Visit
    "ACUTE": 9201,
    "NONAC": 9201,
    "AMB": 9202,  # Outpatient Visit
    "OBSENC": 9202,
    "PRENC": 9202,
    "VR": 9202,
    "SS": 9202,
    "EMER": 9203,  # Emergency Room Visit
    "HH": 581476,  # Home Visit
}

# Type concepts (provenance).
EHR = 32817
EHR_ENCOUNTER_RECORD = 32827
EHR_PROBLEM_LIST = 32840
EHR_PRESCRIPTION = 32838
EHR_ADMINISTRATION = 32818
PATIENT_SELF_REPORT = 32865

# Quantity.comparator → Meas Value Operator.
OPERATOR = {"<": 4171756, "<=": 4171754, ">=": 4171755, ">": 4172704}

# Observation categories whose unmapped codes go to MEASUREMENT (see docs/fhir-to-omop.md).
MEASUREMENT_CATEGORIES = frozenset({"laboratory", "vital-signs"})
