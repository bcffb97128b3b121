"""Browser fixtures: Debian's Chromium driven by Playwright (never `playwright install`).

Every request a page makes is recorded; `offsite` lists those that leave 127.0.0.1.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import missing
from tests.fixtures.appdb import RecordingMailer

CHROMIUM = os.environ.get("PASSERELLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LOCAL_SCHEMES = ("data", "blob", "about")


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Recorder:
    """All the URLs the browser asked for, and those that left 127.0.0.1."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, request) -> None:
        self.urls.append(request.url)

    @property
    def offsite(self) -> list[str]:
        out = []
        for u in self.urls:
            parsed = urlparse(u)
            if parsed.scheme in LOCAL_SCHEMES:
                continue
            if parsed.hostname != "127.0.0.1":
                out.append(u)
        return out


@pytest.fixture
def recorder():
    return Recorder()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def app(settings, clock):
    from passerelle.web import create_app

    application = create_app(settings, clock=clock, mailer=RecordingMailer())
    yield application
    application.state.services.ctx.db.dispose()


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c
