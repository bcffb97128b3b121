"""The catalogue: public search and dataset pages, stewards' edits, HealthDCAT-AP export."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from passerelle.access.enums import Domain, OrgType
from passerelle.access.schemas import Page
from passerelle.catalog.schemas import DatasetIn, DatasetOut
from passerelle.web.deps import Caller, MaybeCaller, Pages, Svc
from passerelle.web.errors import ERROR_RESPONSES, json_response

router = APIRouter(responses=ERROR_RESPONSES, tags=["catalogue"])
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/datasets", summary="Search the catalogue (public)", response_model=Page[DatasetOut])
def search(
    svc: Svc,
    page: Pages,
    q: Annotated[str, Query(max_length=200, description="Words to find")] = "",
    producer_type: Annotated[OrgType | None, Query()] = None,
    domain: Annotated[Domain | None, Query()] = None,
    period_from: Annotated[date | None, Query()] = None,
    period_to: Annotated[date | None, Query()] = None,
) -> Response:
    return json_response(
        svc.catalog.search_rows(
            q, producer_type, domain, period_from, period_to, page.offset, page.limit
        )
    )


@router.post("/datasets", status_code=201, summary="Publish a dataset (steward)")
def create(svc: Svc, p: Caller, body: DatasetIn) -> DatasetOut:
    return svc.catalog.create(p, body)


@router.get("/datasets/{dataset_id}", summary="One dataset with its profile (public if published)")
def get(svc: Svc, p: MaybeCaller, dataset_id: Id) -> DatasetOut:
    return svc.catalog.get(p, dataset_id)


@router.put("/datasets/{dataset_id}", summary="Edit a dataset (steward of its producer)")
def update(svc: Svc, p: Caller, dataset_id: Id, body: DatasetIn) -> DatasetOut:
    return svc.catalog.update(p, dataset_id, body)


@router.post(
    "/datasets/{dataset_id}/profile",
    summary="Profile the dataset from this node's CDM store, through disclosure control",
)
def profile(svc: Svc, p: Caller, dataset_id: Id) -> DatasetOut:
    return svc.catalog.profile_from_store(p, dataset_id)


@router.get(
    "/catalog/dcat.jsonld",
    summary="The catalogue as HealthDCAT-AP JSON-LD (public)",
    response_class=Response,
    responses={200: {"content": {"application/ld+json": {}}}},
)
def dcat_jsonld(svc: Svc) -> Response:
    from passerelle.catalog.dcat import export

    text = export(svc.catalog.all_published(), svc.ctx.settings.public_base_url, "json-ld")
    return Response(text, media_type="application/ld+json")


@router.get(
    "/catalog/dcat.ttl",
    summary="The catalogue as HealthDCAT-AP Turtle (public)",
    response_class=Response,
    responses={200: {"content": {"text/turtle": {}}}},
)
def dcat_turtle(svc: Svc) -> Response:
    from passerelle.catalog.dcat import export

    text = export(svc.catalog.all_published(), svc.ctx.settings.public_base_url, "turtle")
    return Response(text, media_type="text/turtle")
