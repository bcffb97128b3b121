"""Validated inputs and outputs of the single window (shared by the API, the CLI and services)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from passerelle.access.enums import (
    Domain,
    GdprArt6,
    GdprArt9,
    Methodology,
    OrgType,
    OutputType,
    Purpose,
    RequestStatus,
    ReviewStatus,
    Role,
)

T = TypeVar("T")
Name = Field(min_length=1, max_length=200)
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Page(BaseModel, Generic[T]):
    total: int
    offset: int
    limit: int
    items: list[T]


# -- organisations and users ---------------------------------------------------------------


class OrgIn(Strict):
    name: str = Name
    type: OrgType
    country: str = Field("FR", min_length=2, max_length=2)
    review_days: int | None = Field(None, ge=1, le=365)


class OrgPatch(Strict):
    review_days: int | None = Field(None, ge=1, le=365)


class OrgOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    type: OrgType
    country: str
    review_days: int | None


class UserIn(Strict):
    email: Email
    name: str = Name
    password: str | None = Field(None, min_length=10, max_length=200)
    roles: list[Role] = Field(default_factory=list)


class UserPatch(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    roles: list[Role] | None = None
    active: bool | None = None
    password: str | None = Field(None, min_length=10, max_length=200)


class UserOut(BaseModel):
    id: int
    organisation_id: int
    email: str
    name: str
    roles: list[Role]
    active: bool


class LoginIn(Strict):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: datetime


class ApiKeyIn(Strict):
    name: str = Name


class ApiKeyOut(BaseModel):
    id: int
    organisation_id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None
    key: str | None = None  # shown once, at creation


class Me(BaseModel):
    kind: str
    user_id: int | None
    organisation_id: int
    organisation_type: OrgType
    roles: list[Role]


# -- access requests ----------------------------------------------------------------------


class TeamMember(Strict):
    name: str = Name
    role: str = Field("", max_length=200)
    organisation: str = Field("", max_length=200)
    email: Email | None = None


class RequestIn(Strict):
    title: str = Field(min_length=1, max_length=300)
    purpose: list[Purpose] = Field(min_length=1)
    description: str = Field("", max_length=20000)
    public_interest: str = Field("", max_length=20000)
    gdpr_art6: GdprArt6 | None = None
    gdpr_art9: GdprArt9 | None = None
    methodology: Methodology = Methodology.NONE
    cnil_reference: str = Field("", max_length=100)
    ethics_approval: str = Field("", max_length=300)
    dataset_ids: list[int] = Field(default_factory=list, max_length=200)
    studies: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    domains: list[Domain] = Field(default_factory=list)
    period_start: date | None = None
    period_end: date | None = None
    output_type: OutputType = OutputType.AGGREGATES
    duration_months: int = Field(12, ge=1, le=120)
    team: list[TeamMember] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _period(self) -> RequestIn:
        if self.period_start and self.period_end and self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        if self.methodology == Methodology.CNIL_AUTHORIZATION and not self.cnil_reference:
            raise ValueError("cnil_reference is required with methodology cnil_authorization")
        return self

    @field_validator("dataset_ids")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        return sorted(set(v))


class ReviewOut(BaseModel):
    id: int
    request_id: int
    producer_id: int
    producer_name: str
    status: ReviewStatus
    review_days: int
    started_at: datetime
    due_at: datetime
    paused: bool
    days_left: float
    clock: str  # on_time | near_due | overdue | paused | decided
    extension_days: int
    extension_reason: str
    conditions: str
    comment: str
    decided_at: datetime | None
    on_silence: bool


class RequestOut(BaseModel):
    id: int
    organisation_id: int
    organisation_name: str
    created_by: int
    title: str
    purpose: list[Purpose]
    description: str
    public_interest: str
    gdpr_art6: str | None
    gdpr_art9: str | None
    methodology: Methodology
    cnil_reference: str
    ethics_approval: str
    dataset_ids: list[int]
    studies: list[dict[str, Any]]
    domains: list[str]
    period_start: date | None
    period_end: date | None
    output_type: OutputType
    duration_months: int
    team: list[dict[str, Any]]
    status: RequestStatus
    created_at: datetime
    submitted_at: datetime | None
    activated_at: datetime | None
    ends_at: datetime | None
    closed_at: datetime | None
    reviews: list[ReviewOut]


class DecisionIn(Strict):
    status: ReviewStatus
    conditions: str = Field("", max_length=20000)
    comment: str = Field("", max_length=20000)

    @model_validator(mode="after")
    def _conditions(self) -> DecisionIn:
        if self.status == ReviewStatus.APPROVED_WITH_CONDITIONS and not self.conditions:
            raise ValueError("conditions are required for approved_with_conditions")
        return self


class ExtensionIn(Strict):
    days: int = Field(ge=1, le=365)
    reason: str = Field(min_length=3, max_length=2000)


class TickOut(BaseModel):
    reminded: int
    approved_on_silence: int
    expired: int


# -- audit ----------------------------------------------------------------------------------


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    seq: int
    at: str
    actor: str
    action: str
    object_type: str
    object_id: str
    details: str
    prev_hash: str
    hash: str


class AuditHeadOut(BaseModel):
    count: int
    head_hash: str


class AuditVerifyOut(BaseModel):
    ok: bool
    count: int
    head_hash: str
    first_broken: int | None
    problem: str


# Parametrized once: building Page[X] on every call costs milliseconds.
OrgPage = Page[OrgOut]
UserPage = Page[UserOut]
RequestPage = Page[RequestOut]
ReviewPage = Page[ReviewOut]
AuditPage = Page[AuditEntryOut]
