"""The web layer: FastAPI app factory, REST routers under /api/v1, one error handler."""

from passerelle.web.app import create_app

__all__ = ["create_app"]
