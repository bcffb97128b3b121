"""HealthDCAT-AP export: valid against the DCAT-AP 3.0.0 SHACL shapes, health properties set."""

from __future__ import annotations

import pytest
from rdflib import Graph, URIRef
from test_catalog_service import ds

from passerelle.access.enums import Role
from passerelle.catalog.dcat import HEALTH, export
from passerelle.catalog.service import Catalog
from tests.conftest import shared


@pytest.fixture
def exported(ctx, seeded):
    c = Catalog(ctx)
    first = c.create(seeded.p("hopa", Role.STEWARD), ds())
    c.set_profile(None, first.id, {"persons": 2690, "policy": "test"})
    c.create(
        seeded.p("bio", Role.STEWARD),
        ds(
            title="Registry", legal_basis="Décret 2016", period_end=None, health_themes=["oncology"]
        ),
    )
    return c.all_published()


@pytest.mark.parametrize("fmt", ["turtle", "json-ld"])
def test_export_conforms_to_dcat_ap_3(exported, fmt, app_db_url):
    if not app_db_url.startswith("sqlite"):
        pytest.skip("the export does not depend on the database")
    from pyshacl import validate

    folder = shared("dcat-ap-3.0.0-shacl")
    shapes = Graph().parse(folder / "shapes.ttl")
    shapes.parse(folder / "range.ttl")
    text = export(exported, "https://hub.example", fmt)
    data = Graph().parse(data=text, format=fmt)
    conforms, _, report = validate(data, shacl_graph=shapes, inference="none")
    assert conforms, report


def test_health_properties_are_filled(exported):
    g = Graph().parse(data=export(exported, "https://hub.example", "turtle"), format="turtle")
    first = next(d for d in exported if d.profile)
    node = URIRef(f"https://hub.example/api/v1/datasets/{first.id}")
    for prop in (
        "healthCategory",
        "healthTheme",
        "populationCoverage",
        "numberOfUniqueIndividuals",
        "minTypicalAge",
        "maxTypicalAge",
    ):
        assert g.value(node, HEALTH[prop]) is not None, prop
    assert int(g.value(node, HEALTH.numberOfUniqueIndividuals)) == 2690
    publisher = g.value(node, URIRef("http://purl.org/dc/terms/publisher"))
    assert g.value(publisher, HEALTH.publisherType) is not None
    bases = set(g.objects(node, URIRef("https://w3id.org/dpv#hasLegalBasis")))
    assert URIRef("https://w3id.org/dpv/legal/eu/gdpr#A6-1-e") in bases
    assert URIRef("https://w3id.org/dpv/legal/eu/gdpr#A9-2-j") in bases
