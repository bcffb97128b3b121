"""The small, consistent OMOP vocabulary the synthetic CDM uses (real OMOP concept ids).

Every concept the generator writes is declared here once, with its real OMOP id, domain,
vocabulary, class and code; the vocabulary tables (concept, concept_ancestor,
concept_relationship, vocabulary, domain, concept_class, relationship) are derived from these
declarations. Hierarchies are a real subset of the OMOP ones, so that `descendants: true` in a
study finds child concepts (e.g. 4280942 Acute gastrointestinal hemorrhage under 192671, or a
clinical drug under its RxNorm ingredient).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

VALID_START = date(1970, 1, 1)
VALID_END = date(2099, 12, 31)


@dataclass(frozen=True)
class Concept:
    concept_id: int
    name: str
    domain: str
    vocabulary: str
    concept_class: str
    code: str
    standard: bool = True
    valid_start: date = VALID_START


def _c(
    concept_id: int,
    name: str,
    domain: str,
    vocabulary: str,
    concept_class: str,
    code: str,
    standard: bool = True,
    valid_start: date = VALID_START,
) -> Concept:
    return Concept(concept_id, name, domain, vocabulary, concept_class, code, standard, valid_start)


# -- person, visit, type and unit concepts -----------------------------------------------------
NO_MATCH = 0
MALE, FEMALE = 8507, 8532
WHITE, BLACK, ASIAN = 8527, 8516, 8515
HISPANIC, NOT_HISPANIC = 38003563, 38003564
INPATIENT, OUTPATIENT, EMERGENCY = 9201, 9202, 9203
EHR = 32817  # the record type of every synthetic row
PERCENT, KILOGRAM, MMHG, KG_PER_M2 = 8554, 9529, 8876, 9531
CDM_V54 = 756265

# -- conditions (SNOMED) -----------------------------------------------------------------------
GI_BLEED, ACUTE_GI_BLEED = 192671, 4280942
T2DM, T2DM_NEUROPATHY, T2DM_RETINOPATHY = 201826, 37016354, 4226121
HYPERTENSION, ESSENTIAL_HYPERTENSION = 316866, 320128
MI, ACUTE_MI = 4329847, 312327
CORONARY_ATHEROSCLEROSIS = 317576
COPD, EMPHYSEMA = 255573, 261325
OSTEOARTHRITIS = 80180
ICD10_GI_BLEED = 35208414  # ICD10CM K92.2, a source concept mapped to 192671

# -- drugs (RxNorm ingredients and the products the exposures record) --------------------------
CELECOXIB, DICLOFENAC, METFORMIN, LISINOPRIL, ASPIRIN = 1118084, 1124300, 1503297, 1308216, 1112807
CELECOXIB_200, DICLOFENAC_75 = 1118088, 40162359
METFORMIN_500_ER, LISINOPRIL_10, ASPIRIN_81 = 40163924, 19080128, 19059056
NDC_CELECOXIB_200, NDC_DICLOFENAC_75 = 44923712, 45011828

# -- measurements (LOINC), procedures (SNOMED), observations (SNOMED) --------------------------
HBA1C, BODY_WEIGHT, SYSTOLIC_BP, DIASTOLIC_BP, BMI = 3004410, 3025315, 3004249, 3012888, 3038553
COLONOSCOPY, ECG, PCI, TRANSFUSION, CHEST_XRAY = 4249893, 4163951, 4216130, 4108705, 4163872
SMOKES_DAILY, OBESITY = 42709996, 4060985

# -- vaccines (CVX, standard in the Drug domain), for the FHIR Immunization resources ----------
FLU_VACCINE, PNEUMO_VACCINE = 40213154, 40213201

CLINICAL: tuple[Concept, ...] = (
    _c(
        NO_MATCH,
        "No matching concept",
        "Metadata",
        "None",
        "Undefined",
        "No matching concept",
        standard=False,
    ),
    _c(MALE, "MALE", "Gender", "Gender", "Gender", "M"),
    _c(FEMALE, "FEMALE", "Gender", "Gender", "Gender", "F"),
    _c(WHITE, "White", "Race", "Race", "Race", "5"),
    _c(BLACK, "Black or African American", "Race", "Race", "Race", "3"),
    _c(ASIAN, "Asian", "Race", "Race", "Race", "2"),
    _c(HISPANIC, "Hispanic or Latino", "Ethnicity", "Ethnicity", "Ethnicity", "Hispanic"),
    _c(
        NOT_HISPANIC,
        "Not Hispanic or Latino",
        "Ethnicity",
        "Ethnicity",
        "Ethnicity",
        "Not Hispanic",
    ),
    _c(INPATIENT, "Inpatient Visit", "Visit", "Visit", "Visit", "IP"),
    _c(OUTPATIENT, "Outpatient Visit", "Visit", "Visit", "Visit", "OP"),
    _c(EMERGENCY, "Emergency Room Visit", "Visit", "Visit", "Visit", "ER"),
    _c(
        EHR,
        "EHR",
        "Type Concept",
        "Type Concept",
        "Type Concept",
        "OMOP4976890",
        valid_start=date(2020, 8, 20),
    ),
    _c(PERCENT, "percent", "Unit", "UCUM", "Unit", "%"),
    _c(KILOGRAM, "kilogram", "Unit", "UCUM", "Unit", "kg"),
    _c(MMHG, "millimeter mercury column", "Unit", "UCUM", "Unit", "mm[Hg]"),
    _c(KG_PER_M2, "kilogram per square meter", "Unit", "UCUM", "Unit", "kg/m2"),
    _c(
        GI_BLEED,
        "Gastrointestinal hemorrhage",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "74474003",
    ),
    _c(
        ACUTE_GI_BLEED,
        "Acute gastrointestinal hemorrhage",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "61401005",
    ),
    _c(T2DM, "Type 2 diabetes mellitus", "Condition", "SNOMED", "Clinical Finding", "44054006"),
    _c(
        T2DM_NEUROPATHY,
        "Neuropathy due to type 2 diabetes mellitus",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "368581000119106",
    ),
    _c(
        T2DM_RETINOPATHY,
        "Retinopathy due to type 2 diabetes mellitus",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "422034002",
    ),
    _c(
        HYPERTENSION, "Hypertensive disorder", "Condition", "SNOMED", "Clinical Finding", "38341003"
    ),
    _c(
        ESSENTIAL_HYPERTENSION,
        "Essential hypertension",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "59621000",
    ),
    _c(MI, "Myocardial infarction", "Condition", "SNOMED", "Clinical Finding", "22298006"),
    _c(
        ACUTE_MI,
        "Acute myocardial infarction",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "57054005",
    ),
    _c(
        CORONARY_ATHEROSCLEROSIS,
        "Coronary arteriosclerosis",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "53741008",
    ),
    _c(
        COPD,
        "Chronic obstructive pulmonary disease",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "13645005",
    ),
    _c(EMPHYSEMA, "Pulmonary emphysema", "Condition", "SNOMED", "Clinical Finding", "87433001"),
    _c(OSTEOARTHRITIS, "Osteoarthritis", "Condition", "SNOMED", "Clinical Finding", "396275006"),
    _c(
        ICD10_GI_BLEED,
        "Gastrointestinal hemorrhage, unspecified",
        "Condition",
        "ICD10CM",
        "4-char billing code",
        "K92.2",
        standard=False,
        valid_start=date(2007, 1, 1),
    ),
    _c(CELECOXIB, "celecoxib", "Drug", "RxNorm", "Ingredient", "140587"),
    _c(DICLOFENAC, "diclofenac", "Drug", "RxNorm", "Ingredient", "3355"),
    _c(METFORMIN, "metformin", "Drug", "RxNorm", "Ingredient", "6809"),
    _c(LISINOPRIL, "lisinopril", "Drug", "RxNorm", "Ingredient", "29046"),
    _c(ASPIRIN, "aspirin", "Drug", "RxNorm", "Ingredient", "1191"),
    _c(
        CELECOXIB_200,
        "celecoxib 200 MG Oral Capsule [Celebrex]",
        "Drug",
        "RxNorm",
        "Branded Drug",
        "213469",
    ),
    _c(
        DICLOFENAC_75,
        "diclofenac sodium 75 MG Delayed Release Oral Tablet",
        "Drug",
        "RxNorm",
        "Clinical Drug",
        "855926",
    ),
    _c(
        METFORMIN_500_ER,
        "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
        "Drug",
        "RxNorm",
        "Quant Clinical Drug",
        "860975",
    ),
    _c(LISINOPRIL_10, "lisinopril 10 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug", "314076"),
    _c(ASPIRIN_81, "aspirin 81 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug", "243670"),
    _c(
        NDC_CELECOXIB_200,
        "celecoxib 200 MG Oral Capsule [Celebrex]",
        "Drug",
        "NDC",
        "11-digit NDC",
        "00025152531",
        standard=False,
    ),
    _c(
        NDC_DICLOFENAC_75,
        "Diclofenac Sodium 75 MG Delayed Release Oral Tablet",
        "Drug",
        "NDC",
        "11-digit NDC",
        "00781178901",
        standard=False,
    ),
    _c(
        HBA1C,
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        "Measurement",
        "LOINC",
        "Lab Test",
        "4548-4",
    ),
    _c(BODY_WEIGHT, "Body weight", "Measurement", "LOINC", "Clinical Observation", "29463-7"),
    _c(
        SYSTOLIC_BP,
        "Systolic blood pressure",
        "Measurement",
        "LOINC",
        "Clinical Observation",
        "8480-6",
    ),
    _c(
        DIASTOLIC_BP,
        "Diastolic blood pressure",
        "Measurement",
        "LOINC",
        "Clinical Observation",
        "8462-4",
    ),
    _c(
        BMI,
        "Body mass index (BMI) [Ratio]",
        "Measurement",
        "LOINC",
        "Clinical Observation",
        "39156-5",
    ),
    _c(COLONOSCOPY, "Colonoscopy", "Procedure", "SNOMED", "Procedure", "73761001"),
    _c(ECG, "Electrocardiographic procedure", "Procedure", "SNOMED", "Procedure", "29303009"),
    _c(PCI, "Percutaneous coronary intervention", "Procedure", "SNOMED", "Procedure", "415070008"),
    _c(
        TRANSFUSION,
        "Intravenous blood transfusion of packed cells",
        "Procedure",
        "SNOMED",
        "Procedure",
        "180207008",
    ),
    _c(CHEST_XRAY, "Plain chest X-ray", "Procedure", "SNOMED", "Procedure", "399208008"),
    _c(
        SMOKES_DAILY,
        "Smokes tobacco daily",
        "Observation",
        "SNOMED",
        "Clinical Finding",
        "449868002",
    ),
    _c(
        OBESITY,
        "Body mass index 30+ - obesity",
        "Observation",
        "SNOMED",
        "Clinical Finding",
        "162864005",
    ),
    _c(
        FLU_VACCINE,
        "Influenza, seasonal, injectable, preservative free",
        "Drug",
        "CVX",
        "CVX",
        "140",
        valid_start=date(2011, 11, 4),
    ),
    _c(
        PNEUMO_VACCINE,
        "pneumococcal polysaccharide vaccine, 23 valent",
        "Drug",
        "CVX",
        "CVX",
        "33",
        valid_start=date(2008, 12, 1),
    ),
    _c(CDM_V54, "OMOP CDM Version 5.4.0", "Metadata", "CDM", "CDM", "CDM v5.4.0", standard=False),
)

# Hierarchies: (ancestor, descendant, levels of separation). Self rows are added for every
# standard concept; these are the real OMOP parent-child pairs the demo relies on.
HIERARCHY: tuple[tuple[int, int, int], ...] = (
    (GI_BLEED, ACUTE_GI_BLEED, 1),
    (T2DM, T2DM_NEUROPATHY, 1),
    (T2DM, T2DM_RETINOPATHY, 1),
    (HYPERTENSION, ESSENTIAL_HYPERTENSION, 1),
    (MI, ACUTE_MI, 1),
    (COPD, EMPHYSEMA, 1),
    (CELECOXIB, CELECOXIB_200, 2),
    (DICLOFENAC, DICLOFENAC_75, 1),
    (METFORMIN, METFORMIN_500_ER, 2),
    (LISINOPRIL, LISINOPRIL_10, 1),
    (ASPIRIN, ASPIRIN_81, 1),
)

# Product -> ingredient, for drug_era and the 'RxNorm has ing' relationship.
INGREDIENT_OF: dict[int, int] = {
    CELECOXIB_200: CELECOXIB,
    DICLOFENAC_75: DICLOFENAC,
    METFORMIN_500_ER: METFORMIN,
    LISINOPRIL_10: LISINOPRIL,
    ASPIRIN_81: ASPIRIN,
}

# Source concept -> standard concept ('Maps to').
MAPS_TO: tuple[tuple[int, int], ...] = (
    (ICD10_GI_BLEED, GI_BLEED),
    (NDC_CELECOXIB_200, CELECOXIB_200),
    (NDC_DICLOFENAC_75, DICLOFENAC_75),
)

# -- metadata tables (ids as published in the OMOP vocabulary) ---------------------------------
DOMAINS: tuple[tuple[str, int], ...] = (
    ("Condition", 19),
    ("Drug", 13),
    ("Ethnicity", 4),
    ("Gender", 2),
    ("Measurement", 21),
    ("Metadata", 7),
    ("Observation", 27),
    ("Procedure", 10),
    ("Race", 3),
    ("Type Concept", 58),
    ("Unit", 16),
    ("Visit", 8),
)

VOCABULARIES: tuple[tuple[str, str, int], ...] = (
    ("CDM", "OMOP Common DataModel", 32485),
    ("Concept Class", "OMOP Concept Class", 44819233),
    ("CVX", "CDC Vaccine Administered CVX (NCIRD)", 581400),
    ("Domain", "OMOP Domain", 44819147),
    ("Ethnicity", "OMOP Ethnicity", 44819134),
    ("Gender", "OMOP Gender", 44819108),
    (
        "ICD10CM",
        "International Classification of Diseases, Tenth Revision, Clinical Modification",
        44819098,
    ),
    ("LOINC", "Logical Observation Identifiers Names and Codes (Regenstrief Institute)", 44819102),
    ("NDC", "National Drug Code (FDA and manufacturers)", 44819105),
    ("None", "OMOP Standardized Vocabularies", 44819096),
    ("Race", "Race and Ethnicity Code Set (USBC)", 44819109),
    ("Relationship", "OMOP Relationship", 44819235),
    ("RxNorm", "RxNorm (NLM)", 44819104),
    ("SNOMED", "Systematic Nomenclature of Medicine - Clinical Terms (IHTSDO)", 44819097),
    ("Type Concept", "OMOP Type Concept", NO_MATCH),
    ("UCUM", "Unified Code for Units of Measure (Regenstrief Institute)", 44819107),
    ("Visit", "OMOP Visit", 44819119),
    ("Vocabulary", "OMOP Vocabulary", 44819232),
)

# (id, name, hierarchical, defines ancestry, reverse, concept id)
RELATIONSHIPS: tuple[tuple[str, str, int, int, str, int], ...] = (
    ("Is a", "Is a", 1, 0, "Subsumes", 44818821),
    ("Mapped from", "Standard to Non-standard map (OMOP)", 0, 0, "Maps to", 44818976),
    ("Maps to", "Non-standard to Standard map (OMOP)", 0, 0, "Mapped from", 44818977),
    ("RxNorm has ing", "Has ingredient (RxNorm)", 1, 0, "RxNorm ing of", 44818719),
    ("RxNorm ing of", "Ingredient of (RxNorm)", 1, 1, "RxNorm has ing", 44818817),
    ("Subsumes", "Subsumes", 1, 1, "Is a", 44818723),
)

VOCABULARY_VERSION = "v5.0 demo subset"  # cdm_source allows 20 characters

CONCEPTS_BY_ID: dict[int, Concept] = {c.concept_id: c for c in CLINICAL}


def _metadata_concepts() -> list[Concept]:
    """Concepts naming the domains, vocabularies and relationships (OMOP 'Metadata')."""
    out = [
        _c(cid, name, "Metadata", "Domain", "Domain", "OMOP generated", standard=False)
        for name, cid in DOMAINS
    ]
    out += [
        _c(cid, name, "Metadata", "Vocabulary", "Vocabulary", "OMOP generated", standard=False)
        for _, name, cid in VOCABULARIES
        if cid != NO_MATCH
    ]
    out += [
        _c(r[5], r[1], "Metadata", "Relationship", "Relationship", "OMOP generated", standard=False)
        for r in RELATIONSHIPS
    ]
    return out


def all_concepts() -> list[Concept]:
    """Every concept of the demo vocabulary, ordered by id (one row each)."""
    seen: dict[int, Concept] = {}
    for c in (*CLINICAL, *_metadata_concepts()):
        seen.setdefault(c.concept_id, c)
    return [seen[k] for k in sorted(seen)]


def vocabulary_rows() -> dict[str, list[dict[str, object]]]:
    """The rows of the seven vocabulary tables, keyed by table name."""
    concepts = all_concepts()
    concept_rows: list[dict[str, object]] = [
        {
            "concept_id": c.concept_id,
            "concept_name": c.name,
            "domain_id": c.domain,
            "vocabulary_id": c.vocabulary,
            "concept_class_id": c.concept_class,
            "standard_concept": "S" if c.standard else None,
            "concept_code": c.code,
            "valid_start_date": c.valid_start,
            "valid_end_date": VALID_END,
            "invalid_reason": None,
        }
        for c in concepts
    ]
    ancestors = {(c.concept_id, c.concept_id): 0 for c in concepts if c.standard}
    for anc, desc, level in HIERARCHY:
        ancestors[(anc, desc)] = level
    ancestor_rows: list[dict[str, object]] = [
        {
            "ancestor_concept_id": a,
            "descendant_concept_id": d,
            "min_levels_of_separation": lvl,
            "max_levels_of_separation": lvl,
        }
        for (a, d), lvl in sorted(ancestors.items())
    ]
    pairs: list[tuple[int, int, str]] = []
    for src, std in MAPS_TO:
        pairs += [(src, std, "Maps to"), (std, src, "Mapped from")]
    for anc, desc, _ in HIERARCHY:
        if desc in INGREDIENT_OF:
            pairs += [(desc, anc, "RxNorm has ing"), (anc, desc, "RxNorm ing of")]
        else:
            pairs += [(desc, anc, "Is a"), (anc, desc, "Subsumes")]
    for c in concepts:
        if c.standard:
            pairs.append((c.concept_id, c.concept_id, "Maps to"))
    relationship_rows: list[dict[str, object]] = [
        {
            "concept_id_1": a,
            "concept_id_2": b,
            "relationship_id": rel,
            "valid_start_date": VALID_START,
            "valid_end_date": VALID_END,
            "invalid_reason": None,
        }
        for a, b, rel in sorted(pairs)
    ]
    classes = sorted({c.concept_class for c in concepts})
    return {
        "concept": concept_rows,
        "concept_ancestor": ancestor_rows,
        "concept_relationship": relationship_rows,
        "vocabulary": [
            {
                "vocabulary_id": vid,
                "vocabulary_name": name,
                "vocabulary_reference": "OMOP generated",
                "vocabulary_version": VOCABULARY_VERSION,
                "vocabulary_concept_id": cid,
            }
            for vid, name, cid in VOCABULARIES
        ],
        "domain": [
            {"domain_id": name, "domain_name": name, "domain_concept_id": cid}
            for name, cid in DOMAINS
        ],
        "concept_class": [
            {"concept_class_id": k, "concept_class_name": k, "concept_class_concept_id": NO_MATCH}
            for k in classes
        ],
        "relationship": [
            {
                "relationship_id": r[0],
                "relationship_name": r[1],
                "is_hierarchical": r[2],
                "defines_ancestry": r[3],
                "reverse_relationship_id": r[4],
                "relationship_concept_id": r[5],
            }
            for r in RELATIONSHIPS
        ],
    }
