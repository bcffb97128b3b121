from ingest_helpers import settings  # noqa: F401  (fixture)
