"""Alembic migrations of the app database (run by `passerelle db upgrade` or Database.upgrade)."""
