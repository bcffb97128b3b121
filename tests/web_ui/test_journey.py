"""The full journey in a real browser, against real processes on 127.0.0.1.

An applicant searches the catalogue, runs a feasibility count, files one request to two
hospitals; each hospital's reviewer approves (and the hospital records it in its node's own
register); the applicant runs the study through the hub and downloads the result; the auditor
sees a verified chain. Every page is screenshot under test-artifacts/ and no request of any
page leaves 127.0.0.1.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.web_ui.conftest import shot
from tests.web_ui.platform import PASSWORD, USERS, start_platform

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

STUDY = {
    "study": "gi-bleed-by-sex",
    "cohort": {
        "entry": {"condition": {"concepts": [192671], "descendants": True}, "occurrence": "first"}
    },
    "analyses": [
        {"name": "size", "count": "persons"},
        {"name": "by_sex", "count": "persons", "by": ["sex"]},
        {"name": "by_age", "count": "persons", "by": [{"age_band": 20}]},
    ],
}


@pytest.fixture(scope="module")
def platform(gibleed_dir, tmp_path_factory):
    p = start_platform(gibleed_dir, tmp_path_factory.mktemp("web-journey"))
    yield p
    p.stop()


def login(browser, platform, recorder, who: str, lang: str = "en-GB"):
    context = browser.new_context(locale=lang, accept_downloads=True)
    context.on("request", recorder)
    page = context.new_page()
    page.goto(platform.url + "/login")
    page.get_by_label("E-mail").fill(USERS[who][0])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard")
    return context, page


def test_full_journey(browser, platform, recorder):
    base = platform.url

    # -- the public: home, observatory, catalogue ------------------------------------------
    public = browser.new_context(locale="en-GB")
    public.on("request", recorder)
    page = public.new_page()
    page.goto(base + "/")
    shot(page, "01-home")
    page.goto(base + "/observatory")
    shot(page, "02-observatory-empty")
    public.close()

    # -- the applicant searches the catalogue ---------------------------------------------
    ctx, page = login(browser, platform, recorder, "applicant")
    page.get_by_role("link", name="Catalogue", exact=True).first.click()
    page.get_by_label("Words").fill("bleeding")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/catalogue?q=bleeding*")
    assert page.get_by_text("2 datasets found.").is_visible()
    shot(page, "03-catalogue-search")
    page.get_by_role("link", name="CHU Nord — gastrointestinal bleeding cohort (OMOP CDM)").click()
    assert page.locator("svg.chart").count() >= 1  # the profile as charts
    assert page.get_by_role("heading", name="Records per domain").is_visible()
    shot(page, "04-dataset-profile")

    # -- a feasibility count, with the concept found by name ---------------------------------
    page.goto(base + "/feasibility")
    search = page.get_by_label("Search a concept by name or code").first
    search.fill("Gastrointestinal hem")
    page.locator("#entry_concepts-list li[role=option]").first.wait_for()
    search.press("ArrowDown")
    search.press("Enter")
    assert "192671" in page.get_by_label("Entry concepts").input_value()
    page.get_by_role("button", name="Count").click()
    page.locator("#answer").wait_for()
    total = page.locator("#total").inner_text()
    assert total.replace("\u202f", "").isdigit() and int(total.replace("\u202f", "")) > 0
    assert page.locator("#answer table tbody tr").count() == 2  # one noisy count per hospital
    shot(page, "05-feasibility")

    # -- one request to the two hospitals -----------------------------------------------------
    page.get_by_role("button", name="File an access request with this cohort").click()
    page.wait_for_url("**/requests/new")
    assert "192671" in page.get_by_label("Studies (JSON or YAML study specs)").input_value()
    page.get_by_label("Studies (JSON or YAML study specs)").fill(json.dumps(STUDY, indent=2))
    for hospital in ("CHU Nord", "CHU Sud"):
        page.get_by_label(f"{hospital} — gastrointestinal bleeding cohort (OMOP CDM)").check()
    page.get_by_label("Title", exact=True).fill("Upper GI bleeding after NSAIDs")
    page.get_by_label("Research", exact=True).check()
    page.get_by_label("Description").fill("Incidence of GI bleeding by sex and age.")
    page.get_by_label("GDPR article 6").select_option("6.1.e")
    page.get_by_label("GDPR article 9").select_option("9.2.j")
    page.get_by_label("Reference methodology").select_option("MR-004")
    shot(page, "06-request-form")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url("**/requests/*?saved=1")
    request_id = int(page.url.split("/requests/")[1].split("?")[0])
    page.get_by_role("button", name="Submit to the producers").click()
    page.wait_for_url("**?submitted=1")
    assert page.locator("#reviews tbody tr").count() == 2  # one decision and clock per producer
    shot(page, "07-request-submitted")

    # -- each hospital's reviewer approves ------------------------------------------------------
    for node, hospital in (("chu-nord", "CHU Nord"), ("chu-sud", "CHU Sud")):
        rctx, rpage = login(browser, platform, recorder, f"reviewer-{node}")
        rpage.get_by_role("link", name="Review queue").first.click()
        assert rpage.locator("#queue tbody tr").count() == 1
        shot(rpage, f"08-queue-{node}")
        rpage.get_by_role("link", name="Upper GI bleeding after NSAIDs").click()
        rpage.get_by_label("Approved", exact=True).check()
        rpage.get_by_role("button", name="Record the decision").click()
        rpage.wait_for_url("**?decided=1")
        assert rpage.locator("#decision").inner_text() == "Approved"
        shot(rpage, f"09-decision-{node}")
        rctx.close()
        platform.approve_at_node(node, f"request-{request_id}")
        assert hospital

    # -- the applicant runs the study and downloads the result -----------------------------------
    page.goto(f"{base}/requests/{request_id}")
    assert page.locator("#request-status").inner_text() == "Active"
    shot(page, "10-request-approved")
    page.get_by_role("link", name="Open the project workspace").click()
    page.get_by_role("button", name="Run through the hub").click()
    page.locator("#result").wait_for()
    assert page.get_by_role("heading", name="by_sex").is_visible()
    assert "Partial result" not in page.content()
    shot(page, "11-workspace-result")
    with page.expect_download() as info:
        page.locator("#download-csv").click()
    text = info.value.path().read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "table"
    assert any(r[0] == "size" and r[-1].isdigit() and int(r[-1]) > 0 for r in rows[1:])
    with page.expect_download() as info:
        page.locator("#download-json").click()
    answer = json.loads(info.value.path().read_text())
    assert {s["site"] for s in answer["sites"]} == {"chu-nord", "chu-sud"}
    assert all(s["status"] == "ok" for s in answer["sites"])
    ctx.close()

    # -- the steward and the admin (their pages render) -------------------------------------------
    for who, path, name in (("steward", "/steward", "12-steward"), ("admin", "/admin", "13-admin")):
        sctx, spage = login(browser, platform, recorder, who)
        spage.goto(base + path)
        assert spage.locator("h1").count() == 1
        shot(spage, name)
        sctx.close()

    # -- the auditor sees a verified chain -----------------------------------------------------
    actx, apage = login(browser, platform, recorder, "auditor")
    apage.get_by_role("link", name="Audit").first.click()
    verification = apage.locator("#verification")
    assert verification.inner_text().startswith("Chain verified")
    assert apage.get_by_role("cell", name="study.run").first.is_visible()
    shot(apage, "14-audit")
    actx.close()

    # -- the observatory shows it, in French too -----------------------------------------------
    fr = browser.new_context(locale="fr-FR")
    fr.on("request", recorder)
    fpage = fr.new_page()
    for _ in range(60):  # on a loaded machine the page may first show the figures being refreshed
        fpage.goto(base + "/observatory")
        if fpage.locator("#n-requests").inner_text() == "1":
            break
        fpage.wait_for_timeout(1000)
    assert fpage.locator("html").get_attribute("lang") == "fr"
    assert fpage.locator("#n-requests").inner_text() == "1"
    assert fpage.get_by_role(
        "heading", name="Observatoire de l'accès aux données de santé"
    ).is_visible()
    shot(fpage, "15-observatoire-fr")
    fpage.get_by_role("link", name="English").click()
    assert fpage.locator("html").get_attribute("lang") == "en"
    fr.close()

    # -- nothing left 127.0.0.1 ------------------------------------------------------------------
    assert recorder.urls, "no request was recorded"
    assert recorder.offsite == [], recorder.offsite
