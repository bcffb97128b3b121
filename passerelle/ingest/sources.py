"""Finding FHIR input files and reading them as a stream.

Bundles (`.json`, `.json.gz`) are read one file at a time; Bulk Data NDJSON (`.ndjson`,
`.ndjson.gz`) one line at a time, never whole. `log.ndjson` (the Bulk Data export log, whose
lines are not resources) is skipped and reported.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from passerelle.errors import UserError

# FHIR R4 (4.0.1) resource types.
R4_TYPES = frozenset(
    [
        "Account",
        "ActivityDefinition",
        "AdverseEvent",
        "AllergyIntolerance",
        "Appointment",
        "AppointmentResponse",
        "AuditEvent",
        "Basic",
        "Binary",
        "BiologicallyDerivedProduct",
        "BodyStructure",
        "Bundle",
        "CapabilityStatement",
        "CarePlan",
        "CareTeam",
        "CatalogEntry",
        "ChargeItem",
        "ChargeItemDefinition",
        "Claim",
        "ClaimResponse",
        "ClinicalImpression",
        "CodeSystem",
        "Communication",
        "CommunicationRequest",
        "CompartmentDefinition",
        "Composition",
        "ConceptMap",
        "Condition",
        "Consent",
        "Contract",
        "Coverage",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
        "DetectedIssue",
        "Device",
        "DeviceDefinition",
        "DeviceMetric",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "DocumentManifest",
        "DocumentReference",
        "EffectEvidenceSynthesis",
        "Encounter",
        "Endpoint",
        "EnrollmentRequest",
        "EnrollmentResponse",
        "EpisodeOfCare",
        "EventDefinition",
        "Evidence",
        "EvidenceVariable",
        "ExampleScenario",
        "ExplanationOfBenefit",
        "FamilyMemberHistory",
        "Flag",
        "Goal",
        "GraphDefinition",
        "Group",
        "GuidanceResponse",
        "HealthcareService",
        "ImagingStudy",
        "Immunization",
        "ImmunizationEvaluation",
        "ImmunizationRecommendation",
        "ImplementationGuide",
        "InsurancePlan",
        "Invoice",
        "Library",
        "Linkage",
        "List",
        "Location",
        "Measure",
        "MeasureReport",
        "Media",
        "Medication",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationKnowledge",
        "MedicationRequest",
        "MedicationStatement",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "MessageDefinition",
        "MessageHeader",
        "MolecularSequence",
        "NamingSystem",
        "NutritionOrder",
        "Observation",
        "ObservationDefinition",
        "OperationDefinition",
        "OperationOutcome",
        "Organization",
        "OrganizationAffiliation",
        "Parameters",
        "Patient",
        "PaymentNotice",
        "PaymentReconciliation",
        "Person",
        "PlanDefinition",
        "Practitioner",
        "PractitionerRole",
        "Procedure",
        "Provenance",
        "Questionnaire",
        "QuestionnaireResponse",
        "RelatedPerson",
        "RequestGroup",
        "ResearchDefinition",
        "ResearchElementDefinition",
        "ResearchStudy",
        "ResearchSubject",
        "RiskAssessment",
        "RiskEvidenceSynthesis",
        "Schedule",
        "SearchParameter",
        "ServiceRequest",
        "Slot",
        "Specimen",
        "SpecimenDefinition",
        "StructureDefinition",
        "StructureMap",
        "Subscription",
        "Substance",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
        "SupplyDelivery",
        "SupplyRequest",
        "Task",
        "TerminologyCapabilities",
        "TestReport",
        "TestScript",
        "ValueSet",
        "VerificationResult",
        "VisionPrescription",
    ]
)

BUNDLE_SUFFIXES = (".json", ".json.gz")
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz")
EXPORT_LOG_NAMES = ("log.ndjson", "log.ndjson.gz")


@dataclass(frozen=True)
class SourceFile:
    path: Path
    kind: str  # bundle | ndjson
    type_hint: str | None = None  # Bulk Data names files <Type>.<n>.ndjson

    @property
    def name(self) -> str:
        return self.path.name


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(NDJSON_SUFFIXES):
        return "ndjson"
    if name.endswith(BUNDLE_SUFFIXES):
        return "bundle"
    return None


def _hint(path: Path) -> str | None:
    first = path.name.split(".", 1)[0]
    return first if first in R4_TYPES else None


def discover(paths: list[Path]) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Input files in a stable order, and (file, reason) for the files left aside."""
    found: list[SourceFile] = []
    skipped: list[tuple[str, str]] = []
    for given in paths:
        if not given.exists():
            raise UserError(f"{given} does not exist")
        candidates = (
            sorted(p for p in given.rglob("*") if p.is_file()) if given.is_dir() else [given]
        )
        for p in candidates:
            kind = _kind(p)
            if p.name.lower() in EXPORT_LOG_NAMES:
                skipped.append((p.name, "Bulk Data export log, not resources"))
            elif kind is None:
                if not given.is_dir():
                    skipped.append((p.name, "not .json, .json.gz, .ndjson or .ndjson.gz"))
            else:
                found.append(SourceFile(p, kind, _hint(p) if kind == "ndjson" else None))
    return found, skipped


def open_binary(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for each non-blank line, streamed."""
    with open_binary(path) as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                yield n, line


def read_bytes(path: Path) -> bytes:
    with open_binary(path) as fh:
        return fh.read()
