"""A node's feed: its own organisation's committee decisions (node API keys only)."""

from __future__ import annotations

from fastapi import APIRouter

from passerelle.access.node_decisions import NodeDecisionPage, NodeDecisions
from passerelle.web.deps import Caller, Pages, Svc
from passerelle.web.errors import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES, tags=["nodes"])


@router.get(
    "/nodes/me/decisions",
    summary="Decided reviews of the calling node's organisation, oldest first (node API key)",
)
def my_decisions(svc: Svc, p: Caller, page: Pages) -> NodeDecisionPage:
    return NodeDecisions(svc.ctx).list(p, page.offset, page.limit)
