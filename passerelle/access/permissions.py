"""Who may act on what: a principal's roles and organisation against an object.

What a *state* allows is in workflow.py; these checks only answer "is this caller the right
person". Each raises Forbidden with a message naming the missing role or organisation.
"""

from __future__ import annotations

from passerelle.access.auth import Principal
from passerelle.access.enums import Role
from passerelle.access.errors import Forbidden
from passerelle.access.models import AccessRequest, Dataset, Review


def require_user(p: Principal) -> None:
    if p.kind != "user":
        raise Forbidden("this operation needs a user account, not a node key")


def require_role(p: Principal, *roles: Role) -> None:
    require_user(p)
    if not p.has(*roles):
        names = " or ".join(r.value for r in roles)
        raise Forbidden(f"this operation needs the role {names}")


def require_role_in(p: Principal, org_id: int, *roles: Role) -> None:
    require_role(p, *roles)
    if not p.member_of(org_id):
        raise Forbidden("this operation is limited to members of the organisation concerned")


def may_manage_org(p: Principal, org_id: int) -> None:
    require_role_in(p, org_id, Role.ADMIN)


def may_edit_dataset(p: Principal, ds: Dataset) -> None:
    require_role_in(p, ds.organisation_id, Role.STEWARD)


def producer_ids(req: AccessRequest) -> set[int]:
    return {r.producer_id for r in req.reviews}


def can_read_request(p: Principal, req: AccessRequest) -> bool:
    # An organisation can be both the applicant and one of the producers (a hospital asking its
    # own and other hospitals' data): its reviewers then read the request as producers.
    if (
        p.member_of(req.organisation_id)
        and p.kind == "user"
        and p.has(Role.APPLICANT, Role.ADMIN, Role.AUDITOR)
    ):
        return True
    if p.organisation_id in producer_ids(req):
        return p.kind == "node" or p.has(Role.REVIEWER, Role.STEWARD, Role.ADMIN, Role.AUDITOR)
    return False


def may_read_request(p: Principal, req: AccessRequest) -> None:
    if not can_read_request(p, req):
        raise Forbidden("this request belongs to another organisation")


def may_act_as_applicant(p: Principal, req: AccessRequest) -> None:
    require_role_in(p, req.organisation_id, Role.APPLICANT)


def may_close(p: Principal, req: AccessRequest) -> Role:
    require_role_in(p, req.organisation_id, Role.APPLICANT, Role.ADMIN)
    return Role.APPLICANT if p.has(Role.APPLICANT) else Role.ADMIN


def may_review(p: Principal, review: Review) -> None:
    require_role_in(p, review.producer_id, Role.REVIEWER)


def may_audit(p: Principal) -> None:
    require_role(p, Role.AUDITOR)
