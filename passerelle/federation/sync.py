"""`passerelle node sync`: the node pulls its own committee's decisions from the single window.

Pull, never push: the hub cannot write a node's register. The node asks the single window's REST
API (`GET /api/v1/nodes/me/decisions`, authenticated with its organisation's node API key) for
the decided reviews whose producer is the key's organisation, checks that this organisation is
the one its own config names (all or nothing: a mismatch applies no decision), and applies each
decision to its register once:

- approved / approved with conditions (request still running) → an approval of project
  `request-N` for the request's first purpose and its output type, expiring at the project's end;
- rejected, or the request expired or was closed → the project's approvals are revoked.

Each change is recorded in the register's `node_sync` table with its source (hub, review id,
statuses, decided at, reviewer). Federation may not import `access`: this is HTTP only.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

from passerelle.federation.config import SyncConfig
from passerelle.federation.errors import FederationError
from passerelle.federation.register import NodeRegister, SyncedDecision

log = logging.getLogger(__name__)

DECISIONS_PATH = "/api/v1/nodes/me/decisions"
PAGE = 100
ACTIONS = frozenset({"approve", "revoke"})
PROJECT_PREFIX = "request-"  # the single window's project ids: request-N


class SyncError(FederationError):
    """The decisions could not be fetched or do not belong to this node: nothing was applied."""

    exit_code = 1


@dataclass
class SyncReport:
    fetched: int = 0
    approved: int = 0
    revoked: int = 0
    unchanged: int = 0
    changes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.fetched} decision(s) read: {self.approved} approval(s) recorded, "
            f"{self.revoked} revocation(s) applied, {self.unchanged} already applied"
        )


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def fetch(cfg: SyncConfig, client: httpx.Client | None = None) -> list[dict[str, Any]]:
    """Every decision of the key's organisation, after checking it is this node's."""
    own = client is None
    http = client or httpx.Client(timeout=cfg.timeout_seconds)
    items: list[dict[str, Any]] = []
    try:
        offset = 0
        while True:
            try:
                resp = http.get(
                    cfg.hub_api + DECISIONS_PATH,
                    params={"offset": offset, "limit": PAGE},
                    headers={"X-API-Key": cfg.api_key},
                )
            except httpx.HTTPError as exc:
                raise SyncError(f"cannot reach {cfg.hub_api}: {type(exc).__name__}") from None
            if resp.status_code in (401, 403):
                raise SyncError(
                    f"{cfg.hub_api} refused the node API key (HTTP {resp.status_code}): "
                    "it must be a node key of this organisation"
                )
            if resp.status_code != 200:
                raise SyncError(f"{cfg.hub_api} answered HTTP {resp.status_code}")
            try:
                page = resp.json()
                page_items = list(page["items"])
                total = int(page["total"])
            except (ValueError, KeyError, TypeError):
                raise SyncError(f"{cfg.hub_api} did not answer with a decisions page") from None
            if page.get("organisation_name") != cfg.organisation:
                raise SyncError(
                    f"the API key belongs to {page.get('organisation_name')!r}, "
                    f"not to this node's organisation {cfg.organisation!r}: nothing applied"
                )
            for item in page_items:
                if item.get("producer_id") != page.get("organisation_id"):
                    raise SyncError(f"review {item.get('review_id')} is another producer's")
            items.extend(page_items)
            offset += len(page_items)
            if not page_items or offset >= total:
                return items
    finally:
        if own:
            http.close()


def decision(cfg: SyncConfig, item: dict[str, Any]) -> SyncedDecision:
    try:
        return _decision(cfg, item)
    except (ValueError, KeyError, TypeError):
        raise SyncError(f"review {item.get('review_id')}: malformed decision") from None


def _decision(cfg: SyncConfig, item: dict[str, Any]) -> SyncedDecision:
    action = item.get("action")
    request_id = int(item["request_id"])
    project = f"{PROJECT_PREFIX}{request_id}"
    if action not in ACTIONS or item.get("project_id") != project or not item.get("purpose"):
        raise ValueError("malformed")
    return SyncedDecision(
        hub=cfg.hub_api,
        project_id=project,
        review_id=int(item["review_id"]),
        action=str(action),
        review_status=str(item["review_status"]),
        request_status=str(item["request_status"]),
        purpose=str(item["purpose"]),
        output_type=str(item["output_type"]),
        decided_at=_time(item.get("decided_at")),
        decided_by=f"{item.get('decided_by') or 'system'} ({cfg.organisation})",
        expires_at=_time(item.get("ends_at")),
    )


def sync(register: NodeRegister, cfg: SyncConfig, client: httpx.Client | None = None) -> SyncReport:
    """Fetch, check, then apply every decision once (idempotent)."""
    decisions = [decision(cfg, item) for item in fetch(cfg, client)]
    report = SyncReport(fetched=len(decisions))
    for d in decisions:
        changed = register.apply(d)
        if changed is None:
            report.unchanged += 1
            continue
        if d.action == "approve":
            report.approved += 1
        else:
            report.revoked += 1
        report.changes.append(
            f"{d.action} {d.project_id} (review {d.review_id}, {d.review_status}, "
            f"request {d.request_status}): {changed} approval(s)"
        )
    return report


class SyncThread(threading.Thread):
    """`serve --role node` with a [sync] table: sync at start, then every interval_seconds."""

    def __init__(self, register: NodeRegister, cfg: SyncConfig) -> None:
        super().__init__(name="passerelle-node-sync", daemon=True)
        self.register, self.cfg = register, cfg
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                report = sync(self.register, self.cfg)
                if report.changes:
                    log.warning("node sync: %s", report.summary())
            except SyncError as exc:
                log.warning("node sync: %s", exc)
            except Exception as exc:  # keep serving; say what failed, never any data
                log.error("node sync failed: %s", type(exc).__name__)
            self.stopped.wait(self.cfg.interval_seconds)

    def stop(self) -> None:
        self.stopped.set()
