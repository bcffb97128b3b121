"""The data-quality report: DataQualityDashboard-style checks and Achilles-style profiles,
written as SQL run through `store.query` so they run on DuckDB, PostgreSQL and Spark."""
