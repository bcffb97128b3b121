"""Reminders reach a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import socket

import pytest
from aiosmtpd.controller import Controller

from passerelle.access.context import Context
from passerelle.access.enums import Role
from passerelle.access.mail import SmtpMailer
from passerelle.access.requests import Requests
from passerelle.access.schemas import RequestIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog


class Capture:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode())
        )
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    handler = Capture()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, handler
    controller.stop()


def test_near_due_reminder_is_sent_over_smtp(db, settings, clock, smtp, app_db_url):
    if not app_db_url.startswith("sqlite"):
        pytest.skip("the SMTP path does not depend on the database")
    controller, handler = smtp
    settings = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": controller.port,
            "mail_from": "hub@passerelle.example",
        }
    )
    ctx = Context(db, settings, clock)
    assert isinstance(ctx.mailer, SmtpMailer)
    from tests.fixtures.appdb import seed

    seeded = seed(ctx)
    ds = Catalog(ctx).create(
        seeded.p("hopa", Role.STEWARD),
        DatasetIn(title="T", description="D", domains=["person"], contact_email="a@b.example"),
    )
    svc = Requests(ctx)
    req = svc.create(
        seeded.p("bio", Role.APPLICANT),
        RequestIn(
            title="R",
            purpose=["research"],
            gdpr_art6="6.1.e",
            gdpr_art9="9.2.j",
            dataset_ids=[ds.id],
        ),
    )
    svc.submit(seeded.p("bio", Role.APPLICANT), req.id)
    clock.advance(days=55)
    assert svc.tick().reminded == 1
    assert len(handler.messages) == 1
    sender, rcpts, content = handler.messages[0]
    assert sender == "hub@passerelle.example" and rcpts == ["reviewer@hopa.example"]
    assert "is due soon" in content and f"request {req.id}" in content
