"""What every service needs: the database, a clock, settings and a mailer."""

from __future__ import annotations

from dataclasses import dataclass, field

from passerelle.access.auth import Principal
from passerelle.access.clock import Clock, SystemClock
from passerelle.access.db import Database
from passerelle.access.mail import Mailer, mailer_from_settings
from passerelle.access.repository import UnitOfWork
from passerelle.config import Settings, get_settings

CLI_ACTOR = "cli"


@dataclass
class Context:
    db: Database
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    mailer: Mailer | None = None

    def __post_init__(self) -> None:
        if self.mailer is None:
            self.mailer = mailer_from_settings(self.settings)
        self.uow = UnitOfWork(self.db, self.clock)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, clock: Clock | None = None) -> Context:
        settings = settings or get_settings()
        return cls(Database.from_settings(settings), settings, clock or SystemClock())


def actor_of(p: Principal | None) -> str:
    """The audit actor: the principal, or the local operator using the CLI."""
    return CLI_ACTOR if p is None else p.actor
