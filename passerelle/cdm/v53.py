"""Mapping CDM v5.3 files onto the v5.4 tables.

Every difference a v5.3 export shows against the v5.4 declaration is listed here, so a loader
never guesses. Columns added in v5.4 and absent from a v5.3 file load as NULL, except the
required ones in `FILLED`, which get the documented value. See docs/cdm.md.
"""

from __future__ import annotations

# v5.3 column -> v5.4 column, per table.
RENAMES: dict[str, dict[str, str]] = {
    "visit_occurrence": {
        "admitting_source_concept_id": "admitted_from_concept_id",
        "admitting_source_value": "admitted_from_source_value",
        "discharge_to_concept_id": "discharged_to_concept_id",
        "discharge_to_source_value": "discharged_to_source_value",
    },
    "visit_detail": {
        "admitting_source_concept_id": "admitted_from_concept_id",
        "admitting_source_value": "admitted_from_source_value",
        "discharge_to_concept_id": "discharged_to_concept_id",
        "discharge_to_source_value": "discharged_to_source_value",
        "visit_detail_parent_id": "parent_visit_detail_id",
    },
    # The v5.3 DDL misspelt this column; published exports (Eunomia) carry the typo.
    "cost": {"reveue_code_source_value": "revenue_code_source_value"},
}

# Required v5.4 columns a v5.3 file cannot have, and the SQL-free rule that fills them.
# "row_number" numbers the file's rows from 1; an integer is a constant.
FILLED: dict[str, dict[str, int | str]] = {
    # 0 = "No matching concept": a v5.3 export does not say which v5.4 version concept applies.
    "cdm_source": {"cdm_version_concept_id": 0},
    "metadata": {"metadata_id": "row_number"},
}

# v5.3 tables that v5.4 dropped: named and skipped, never loaded.
DROPPED_TABLES = {"attribute_definition", "cohort_attribute"}
