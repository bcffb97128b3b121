"""Ingestion: FHIR R4 (Bundles, Bulk NDJSON) and mapped CSV exports → OMOP CDM rows.

Also the data-quality report (`passerelle.ingest.quality`).
"""
