"""HealthDCAT-AP export of the catalogue (JSON-LD and Turtle, built with rdflib).

DCAT-AP 3.0.0 classes and properties, plus the HealthDCAT-AP health properties: health
category, health theme, population coverage, number of unique individuals (the released,
disclosure-controlled count of the profile), minimum and maximum typical age, publisher type
and legal basis (DPV). A test validates the output against the DCAT-AP 3.0.0 SHACL shapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

from passerelle.access.enums import OrgType, UpdateFrequency
from passerelle.access.models import Dataset, Organisation

HEALTH = Namespace("http://healthdataportal.eu/ns/health#")
DPV = Namespace("https://w3id.org/dpv#")
GDPR = Namespace("https://w3id.org/dpv/legal/eu/gdpr#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
EU = "http://publications.europa.eu/resource/authority/"
ADMS_PUBLISHER = Namespace("http://purl.org/adms/publishertype/")
HEALTH_CATEGORY = Namespace("http://healthdataportal.eu/ns/health-category#")

FREQUENCY = {
    UpdateFrequency.DAILY: "DAILY",
    UpdateFrequency.WEEKLY: "WEEKLY",
    UpdateFrequency.MONTHLY: "MONTHLY",
    UpdateFrequency.QUARTERLY: "QUARTERLY",
    UpdateFrequency.ANNUAL: "ANNUAL",
    UpdateFrequency.IRREGULAR: "IRREG",
    UpdateFrequency.NEVER: "NEVER",
}

# Organisation type -> ADMS publisher type.
PUBLISHER_TYPE = {
    OrgType.HOSPITAL: "NationalAuthority",
    OrgType.ACADEMIC_LAB: "Academia-ScientificOrganisation",
    OrgType.BIOTECH: "Company",
    OrgType.MEDTECH: "Company",
    OrgType.PHARMA: "Company",
    OrgType.DIGITAL_HEALTH: "Company",
    OrgType.PUBLIC_BODY: "NationalAuthority",
    OrgType.PATIENT_ASSOCIATION: "NonProfitOrganisation",
    OrgType.OTHER: "SupraNationalAuthority",
}
# A hospital is a health establishment; ADMS has no such term, so hospitals are published
# as "NationalAuthority" (public) and their HealthDCAT-AP publisher note says what they are.
PUBLISHER_NOTE = {OrgType.HOSPITAL: "Hospital / health establishment"}

GDPR_ARTICLE = re.compile(r"\b(6|9)[.\s]?(1|2)[.\s]?\(?([a-j])\)?", re.IGNORECASE)

OMOP_CDM = URIRef("https://ohdsi.github.io/CommonDataModel/cdm54.html")


def _agent(g: Graph, base: str, org: Organisation) -> URIRef:
    node = URIRef(f"{base}/api/v1/organisations/{org.id}")
    g.add((node, RDF.type, FOAF.Agent))
    g.add((node, FOAF.name, Literal(org.name)))
    kind = _labelled(g, ADMS_PUBLISHER[PUBLISHER_TYPE[org.type]], PUBLISHER_TYPE[org.type])
    g.add((node, DCTERMS.type, kind))
    g.add((node, HEALTH.publisherType, kind))
    g.add((node, HEALTH.publisherNote, Literal(PUBLISHER_NOTE.get(org.type, org.type.value))))
    return node


def _legal_basis(g: Graph, text: str) -> Iterable[URIRef | BNode]:
    found = False
    for art, par, letter in GDPR_ARTICLE.findall(text or ""):
        found = True
        yield GDPR[f"A{art}-{par}-{letter.lower()}"]
    if text and not found:
        node = BNode()
        g.add((node, RDF.type, DPV.LegalBasis))
        g.add((node, DCTERMS.description, Literal(text)))
        yield node


def _labelled(g: Graph, node: URIRef, label: str) -> URIRef:
    """A skos:Concept with the prefLabel DCAT-AP requires."""
    g.add((node, RDF.type, SKOS.Concept))
    g.add((node, SKOS.prefLabel, Literal(label, lang="en")))
    return node


def _concept(g: Graph, value: str) -> URIRef | BNode:
    if value.startswith(("http://", "https://")):
        return _labelled(g, URIRef(value), value.rstrip("/").rsplit("/", 1)[-1])
    node = BNode()
    g.add((node, RDF.type, SKOS.Concept))
    g.add((node, SKOS.prefLabel, Literal(value)))
    return node


def _date(value: date) -> Literal:
    return Literal(value.isoformat(), datatype=XSD.date)


def _datetime(value: datetime) -> Literal:
    return Literal(value.astimezone(UTC).isoformat(), datatype=XSD.dateTime)


def add_dataset(g: Graph, base: str, d: Dataset) -> URIRef:
    node = URIRef(f"{base}/api/v1/datasets/{d.id}")
    g.add((node, RDF.type, DCAT.Dataset))
    g.add((node, DCTERMS.identifier, Literal(str(node))))
    g.add((node, DCTERMS.title, Literal(d.title, lang="fr")))
    g.add((node, DCTERMS.description, Literal(d.description, lang="fr")))
    g.add((node, DCTERMS.publisher, _agent(g, base, d.producer)))
    g.add((node, DCTERMS.issued, _datetime(d.created_at)))
    g.add((node, DCTERMS.modified, _datetime(d.updated_at)))
    g.add((node, DCAT.theme, _labelled(g, URIRef(f"{EU}data-theme/HEAL"), "Health")))
    freq = URIRef(f"{EU}frequency/{FREQUENCY[d.update_frequency]}")
    g.add((freq, RDF.type, DCTERMS.Frequency))
    g.add((node, DCTERMS.accrualPeriodicity, freq))
    rights = URIRef(f"{EU}access-right/NON_PUBLIC")
    g.add((rights, RDF.type, DCTERMS.RightsStatement))
    g.add((node, DCTERMS.accessRights, rights))
    if d.access_conditions:
        g.add((node, RDFS.comment, Literal(d.access_conditions, lang="fr")))
    g.add((OMOP_CDM, RDF.type, DCTERMS.Standard))
    g.add((OMOP_CDM, DCTERMS.title, Literal("OMOP Common Data Model v5.4")))
    g.add((node, DCTERMS.conformsTo, OMOP_CDM))
    for kw in d.keywords:
        g.add((node, DCAT.keyword, Literal(kw, lang="fr")))
    for domain in d.domains:
        g.add((node, DCAT.keyword, Literal(f"OMOP {domain}", lang="en")))
    if d.period_start or d.period_end:
        period = BNode()
        g.add((period, RDF.type, DCTERMS.PeriodOfTime))
        if d.period_start:
            g.add((period, DCAT.startDate, _date(d.period_start)))
        if d.period_end:
            g.add((period, DCAT.endDate, _date(d.period_end)))
        g.add((node, DCTERMS.temporal, period))
    contact = BNode()
    g.add((contact, RDF.type, VCARD.Kind))
    g.add((contact, VCARD.fn, Literal(d.contact_name or d.producer.name)))
    g.add((contact, VCARD.hasEmail, URIRef(f"mailto:{d.contact_email}")))
    g.add((node, DCAT.contactPoint, contact))
    # HealthDCAT-AP health properties
    for cat in d.health_categories:
        g.add((node, HEALTH.healthCategory, _labelled(g, HEALTH_CATEGORY[cat], cat)))
    for theme_value in d.health_themes:
        g.add((node, HEALTH.healthTheme, _concept(g, theme_value)))
    if d.population:
        g.add((node, HEALTH.populationCoverage, Literal(d.population, lang="fr")))
    persons = (d.profile or {}).get("persons")
    if isinstance(persons, int):  # only a released (disclosure-controlled) count
        g.add(
            (
                node,
                HEALTH.numberOfUniqueIndividuals,
                Literal(persons, datatype=XSD.nonNegativeInteger),
            )
        )
    if d.min_age is not None:
        g.add((node, HEALTH.minTypicalAge, Literal(d.min_age, datatype=XSD.nonNegativeInteger)))
    if d.max_age is not None:
        g.add((node, HEALTH.maxTypicalAge, Literal(d.max_age, datatype=XSD.nonNegativeInteger)))
    for basis in _legal_basis(g, d.legal_basis):
        g.add((node, DPV.hasLegalBasis, basis))
    return node


def build_graph(datasets: Iterable[Dataset], base_url: str) -> Graph:
    base = base_url.rstrip("/")
    g = Graph()
    for prefix, ns in (
        ("dcat", DCAT),
        ("dct", DCTERMS),
        ("foaf", FOAF),
        ("vcard", VCARD),
        ("skos", SKOS),
        ("healthdcatap", HEALTH),
        ("dpv", DPV),
        ("eu-gdpr", GDPR),
    ):
        g.bind(prefix, ns)
    catalog = URIRef(f"{base}/api/v1/catalog")
    g.add((catalog, RDF.type, DCAT.Catalog))
    g.add((catalog, DCTERMS.title, Literal("Passerelle", lang="fr")))
    g.add(
        (
            catalog,
            DCTERMS.description,
            Literal(
                "Catalogue des données de santé hospitalières au format OMOP CDM, accessibles par "
                "une demande unique.",
                lang="fr",
            ),
        )
    )
    platform = URIRef(f"{base}/")
    g.add((platform, RDF.type, FOAF.Agent))
    g.add((platform, FOAF.name, Literal("Passerelle")))
    g.add((catalog, DCTERMS.publisher, platform))
    for d in datasets:
        g.add((catalog, DCAT.dataset, add_dataset(g, base, d)))
    return g


FORMATS = {"json-ld": "json-ld", "turtle": "turtle", "ttl": "turtle", "jsonld": "json-ld"}


def export(datasets: Iterable[Dataset], base_url: str, fmt: str = "turtle") -> str:
    try:
        rdf_format = FORMATS[fmt]
    except KeyError:
        from passerelle.access.errors import Invalid

        raise Invalid(f"format: expected one of {', '.join(sorted(FORMATS))}") from None
    g = build_graph(datasets, base_url)
    kwargs: dict[str, Any] = {"format": rdf_format}
    if rdf_format == "json-ld":
        kwargs["context"] = {p: str(ns) for p, ns in g.namespaces() if p}
        kwargs["auto_compact"] = True
    return g.serialize(**kwargs)
