"""Datasets: publish, edit, search, profile (service layer; audited like every change)."""

from __future__ import annotations

from datetime import date
from typing import Any

from passerelle.access import permissions as perm
from passerelle.access.auth import Principal
from passerelle.access.context import Context, actor_of
from passerelle.access.enums import Domain, OrgType, Role
from passerelle.access.errors import Invalid, NotFound
from passerelle.access.models import Dataset
from passerelle.access.schemas import Page
from passerelle.catalog.schemas import DatasetIn, DatasetOut, DatasetPage
from passerelle.catalog.search import index_text, search, search_statement


def dataset_out(d: Dataset) -> DatasetOut:
    return DatasetOut(
        id=d.id,
        organisation_id=d.organisation_id,
        producer_name=d.producer.name,
        producer_type=d.producer.type,
        title=d.title,
        description=d.description,
        domains=d.domains,
        period_start=d.period_start,
        period_end=d.period_end,
        population=d.population,
        update_frequency=d.update_frequency,
        legal_basis=d.legal_basis,
        access_conditions=d.access_conditions,
        keywords=d.keywords,
        contact_name=d.contact_name,
        contact_email=d.contact_email,
        health_categories=d.health_categories,
        health_themes=d.health_themes,
        min_age=d.min_age,
        max_age=d.max_age,
        published=d.published,
        profile=d.profile,
        profiled_at=d.profiled_at,
        updated_at=d.updated_at,
    )


def _apply(d: Dataset, data: DatasetIn, producer_name: str) -> None:
    for key, value in data.model_dump(mode="json").items():
        setattr(d, key, value)
    d.period_start, d.period_end = data.period_start, data.period_end
    d.search_text = index_text(
        [d.title, d.description, d.population, producer_name, *d.keywords, *d.health_themes],
        d.domains,
    )


class Catalog:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _get(self, dal: Any, dataset_id: int, p: Principal | None) -> Dataset:
        d = dal.get_dataset(dataset_id)
        visible = d is not None and (
            d.published
            or p is None
            or (p.member_of(d.organisation_id) and p.has(Role.STEWARD, Role.REVIEWER, Role.ADMIN))
        )
        if d is None or not visible:
            raise NotFound(f"dataset {dataset_id} does not exist")
        return d

    def create(
        self, p: Principal | None, data: DatasetIn, organisation_id: int | None = None
    ) -> DatasetOut:
        if p is not None:
            perm.require_role(p, Role.STEWARD)
            organisation_id = p.organisation_id
        if organisation_id is None:
            raise Invalid("organisation_id is required")
        now = self.ctx.clock.now()
        with self.ctx.uow.write() as dal:
            org = dal.get_org(organisation_id)
            if org is None:
                raise NotFound(f"organisation {organisation_id} does not exist")
            d = Dataset(organisation_id=organisation_id, created_at=now, updated_at=now)
            _apply(d, data, org.name)
            d.producer = org
            dal.add(d)
            dal.audit(actor_of(p), "dataset.create", "dataset", d.id, {"title": d.title})
            return dataset_out(d)

    def update(self, p: Principal | None, dataset_id: int, data: DatasetIn) -> DatasetOut:
        with self.ctx.uow.write() as dal:
            d = self._get(dal, dataset_id, p)
            if p is not None:
                perm.may_edit_dataset(p, d)
            _apply(d, data, d.producer.name)
            d.updated_at = self.ctx.clock.now()
            dal.audit(actor_of(p), "dataset.update", "dataset", d.id, {"title": d.title})
            return dataset_out(d)

    def get(self, p: Principal | None, dataset_id: int) -> DatasetOut:
        with self.ctx.uow.read() as dal:
            return dataset_out(self._get(dal, dataset_id, p))

    def search(
        self,
        q: str = "",
        producer_type: OrgType | None = None,
        domain: Domain | None = None,
        period_from: date | None = None,
        period_to: date | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[DatasetOut]:
        # Validated once, as a whole (the same checks as DatasetOut(...) per item).
        return DatasetPage.model_validate(
            self.search_rows(q, producer_type, domain, period_from, period_to, offset, limit)
        )

    def search_rows(
        self,
        q: str = "",
        producer_type: OrgType | None = None,
        domain: Domain | None = None,
        period_from: date | None = None,
        period_to: date | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> dict[str, Any]:
        """The published datasets found, as plain values shaped like Page[DatasetOut] (what
        `search` validates; the API serialises them as they are)."""
        found = search(
            q, producer_type, domain, period_from, period_to, dialect=self.ctx.db.dialect
        )
        paging = {**found.params, "offset": offset, "limit": limit}
        with self.ctx.db.rows() as conn:  # Core rows, no ORM objects
            rows = conn.execute(found.statements.page, paging).all()
            if rows and len(rows) < limit:  # the last page: no need to count
                total = offset + len(rows)
            else:
                total = conn.execute(found.statements.count, found.params).scalar_one()
        items = [row._asdict() for row in rows]
        return {"total": total, "offset": offset, "limit": limit, "items": items}

    def all_published(self) -> list[Dataset]:
        with self.ctx.db.read() as s:
            return list(s.scalars(search_statement()).unique())

    def set_profile(
        self, p: Principal | None, dataset_id: int, profile: dict[str, Any]
    ) -> DatasetOut:
        """Store a profile that has already passed the node's disclosure control."""
        with self.ctx.uow.write() as dal:
            d = self._get(dal, dataset_id, p)
            if p is not None:
                perm.may_edit_dataset(p, d)
            d.profile = profile
            d.profiled_at = self.ctx.clock.now()
            dal.audit(
                actor_of(p),
                "dataset.profile",
                "dataset",
                d.id,
                {"policy": profile.get("policy"), "persons": profile.get("persons")},
            )
            return dataset_out(d)

    def profile_from_store(
        self, p: Principal | None, dataset_id: int, store_url: str | None = None
    ) -> DatasetOut:
        from passerelle.catalog.profile import released_profile

        self.get(p, dataset_id)  # exists and visible before the (slow) store scan
        if p is not None:
            with self.ctx.uow.read() as dal:
                perm.may_edit_dataset(p, self._get(dal, dataset_id, p))
        profile = released_profile(store_url or self.ctx.settings.default_store_url())
        return self.set_profile(p, dataset_id, profile)
