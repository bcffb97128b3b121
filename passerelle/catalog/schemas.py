"""Validated dataset fields (shared by the API, the CLI and the service)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from passerelle.access.enums import Domain, OrgType, UpdateFrequency
from passerelle.access.schemas import Email, Page, Strict

# HealthDCAT-AP health categories (EHDS article 51 categories of electronic health data).
HEALTH_CATEGORIES = (
    "EHR",
    "CLAIMS",
    "REGISTRY",
    "GENETIC",
    "IMAGING",
    "CLINICAL_TRIAL",
    "SURVEY",
    "BIOBANK",
    "WELLNESS",
    "SOCIAL_DETERMINANTS",
    "PATHOGEN",
    "OTHER",
)


class DatasetIn(Strict):
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(min_length=1, max_length=20000)
    domains: list[Domain] = Field(min_length=1)
    period_start: date | None = None
    period_end: date | None = None
    population: str = Field("", max_length=5000)
    update_frequency: UpdateFrequency = UpdateFrequency.IRREGULAR
    legal_basis: str = Field("", max_length=2000)
    access_conditions: str = Field("", max_length=5000)
    keywords: list[str] = Field(default_factory=list, max_length=50)
    contact_name: str = Field("", max_length=200)
    contact_email: Email
    health_categories: list[str] = Field(default_factory=lambda: ["EHR"], max_length=12)
    health_themes: list[str] = Field(default_factory=list, max_length=50)
    min_age: int | None = Field(None, ge=0, le=130)
    max_age: int | None = Field(None, ge=0, le=130)
    published: bool = True

    @model_validator(mode="after")
    def _check(self) -> DatasetIn:
        if self.period_start and self.period_end and self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        if self.min_age is not None and self.max_age is not None and self.max_age < self.min_age:
            raise ValueError("max_age is below min_age")
        unknown = [c for c in self.health_categories if c not in HEALTH_CATEGORIES]
        if unknown:
            raise ValueError(f"unknown health category {unknown[0]!r}")
        return self


class DatasetOut(BaseModel):
    id: int
    organisation_id: int
    producer_name: str
    producer_type: OrgType
    title: str
    description: str
    domains: list[str]
    period_start: date | None
    period_end: date | None
    population: str
    update_frequency: UpdateFrequency
    legal_basis: str
    access_conditions: str
    keywords: list[str]
    contact_name: str
    contact_email: str
    health_categories: list[str]
    health_themes: list[str]
    min_age: int | None
    max_age: int | None
    published: bool
    profile: dict[str, Any] | None
    profiled_at: datetime | None
    updated_at: datetime


DatasetPage = Page[DatasetOut]
