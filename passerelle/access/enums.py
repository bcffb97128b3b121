"""The closed vocabularies of the single window, as Enums (values are what the API shows)."""

from __future__ import annotations

from enum import StrEnum


class OrgType(StrEnum):
    HOSPITAL = "hospital"  # hospital / health establishment
    ACADEMIC_LAB = "academic_lab"
    BIOTECH = "biotech"
    MEDTECH = "medtech"
    PHARMA = "pharma"
    DIGITAL_HEALTH = "digital_health"
    PUBLIC_BODY = "public_body"
    PATIENT_ASSOCIATION = "patient_association"
    OTHER = "other"


class Role(StrEnum):
    """A user's roles, each scoped to the user's own organisation."""

    APPLICANT = "applicant"
    REVIEWER = "reviewer"
    STEWARD = "steward"
    ADMIN = "admin"
    AUDITOR = "auditor"


class Owner(StrEnum):
    """Who may move a status: a role, the platform itself (clock rules), or a node key."""

    APPLICANT = "applicant"
    REVIEWER = "reviewer"
    STEWARD = "steward"
    ADMIN = "admin"
    SYSTEM = "system"


class Purpose(StrEnum):
    RESEARCH = "research"
    PUBLIC_POLICY = "public_policy"
    CARE_QUALITY = "care_quality"
    MARKET_ACCESS = "market_access"
    MEDICAL_AFFAIRS = "medical_affairs"  # incl. pharmacovigilance
    AI_PRODUCT = "ai_product"
    TEACHING = "teaching"


class Methodology(StrEnum):
    """French reference methodologies (CNIL), or a specific CNIL authorization."""

    MR_001 = "MR-001"
    MR_002 = "MR-002"
    MR_003 = "MR-003"
    MR_004 = "MR-004"
    MR_005 = "MR-005"
    MR_006 = "MR-006"
    CNIL_AUTHORIZATION = "cnil_authorization"
    NONE = "none"


class GdprArt6(StrEnum):
    CONSENT = "6.1.a"
    CONTRACT = "6.1.b"
    LEGAL_OBLIGATION = "6.1.c"
    VITAL_INTEREST = "6.1.d"
    PUBLIC_TASK = "6.1.e"
    LEGITIMATE_INTEREST = "6.1.f"


class GdprArt9(StrEnum):
    EXPLICIT_CONSENT = "9.2.a"
    HEALTH_CARE = "9.2.h"
    PUBLIC_HEALTH = "9.2.i"
    RESEARCH = "9.2.j"


class OutputType(StrEnum):
    AGGREGATES = "aggregates"
    PSEUDONYMIZED_EXTRACT = "pseudonymized_extract"
    SYNTHETIC = "synthetic"


class Domain(StrEnum):
    """OMOP CDM clinical domains a dataset covers or a request asks for."""

    PERSON = "person"
    OBSERVATION_PERIOD = "observation_period"
    VISIT = "visit_occurrence"
    CONDITION = "condition_occurrence"
    DRUG = "drug_exposure"
    PROCEDURE = "procedure_occurrence"
    DEVICE = "device_exposure"
    MEASUREMENT = "measurement"
    OBSERVATION = "observation"
    DEATH = "death"
    NOTE = "note"
    SPECIMEN = "specimen"


class UpdateFrequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"
    IRREGULAR = "irregular"
    NEVER = "never"


class RequestStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACTIVE = "active"  # at least one producer approved
    REJECTED = "rejected"  # every producer rejected
    EXPIRED = "expired"
    CLOSED = "closed"


class ReviewStatus(StrEnum):
    IN_REVIEW = "in_review"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    APPROVED_WITH_CONDITIONS = "approved_with_conditions"
    REJECTED = "rejected"


APPROVED_REVIEWS = frozenset({ReviewStatus.APPROVED, ReviewStatus.APPROVED_WITH_CONDITIONS})
