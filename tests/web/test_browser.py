"""What a person does in the web app, in Chromium, against the whole running service.

Controls are found by their role and accessible name, as a person (or a screen reader)
finds them. Each page is checked by axe and photographed at 1280 and 360 px.
"""

from __future__ import annotations

import json
import re
import time

from playwright.sync_api import FloatRect, Page, Response, expect

from .conftest import (
    ARTIFACTS,
    STEP_TIMEOUT_MS,
    Site,
    SiteFactory,
    assert_accessible,
    screenshots,
)

IDEA = (
    "Let customers of our bike-repair shops book a repair slot online, see the price "
    "estimate up front, and get a text message when the bike is ready."
)
DECISION = re.compile(r"^(Approve|Revise|Reject)$")


def progress(page: Page) -> tuple[str, ...]:
    """The step lines of the run page's progress region, as shown."""
    items = page.get_by_role("region", name="Progress").get_by_role("listitem")
    return tuple(item.inner_text() for item in items.all())


def wait_for_decision(page: Page) -> str:
    decision = page.get_by_role("heading", name="Decision", level=2)
    expect(decision).to_be_visible(timeout=STEP_TIMEOUT_MS)
    label = page.get_by_text(DECISION).first
    expect(label).to_be_visible()
    return label.inner_text()


def run_page_weight(site: Site, path: str) -> int:
    """Bytes on the wire (headers and bodies) for a new tab to open a finished run's page:
    the app, signing in, and every API answer the page needs."""
    page = site.page()
    responses: list[Response] = []
    page.on("response", lambda response: responses.append(response))
    site.sign_in(page, path=path)
    wait_for_decision(page)
    page.wait_for_load_state("networkidle")
    total = 0
    for response in responses:
        sizes = response.request.sizes()
        total += sizes["responseHeadersSize"] + sizes["responseBodySize"]
    return total


def test_sign_in_submit_watch_read_revise_and_compare(site: Site) -> None:
    page = site.page()

    # A wrong key is refused in words, and nothing else is shown.
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert_accessible(page, "sign-in")
    screenshots(page, "sign-in")
    page.get_by_label("API key").fill("ce_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")

    # With the keyboard only: the key, then Enter.
    page.get_by_label("API key").fill(site.api.keys["acme"])
    page.get_by_label("API key").press("Enter")
    expect(page.get_by_text("Signed in as acme")).to_be_visible()
    expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible()

    # A new run, with the real limits shown, submitted: its page appears at once and the
    # steps go live.
    page.get_by_role("link", name="New run").click()
    expect(page.get_by_role("heading", name="New run", level=1)).to_be_visible()
    page.get_by_label("Idea").fill(IDEA)
    expect(page.get_by_text(f"{len(IDEA):,} / 10,000")).to_be_visible()
    personas = page.get_by_role("group", name="Personas").get_by_role("checkbox")
    assert personas.count() == 5
    assert_accessible(page, "new-run")
    screenshots(page, "new-run")
    submitted = time.monotonic()
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_role("region", name="Progress")).to_contain_text(
        re.compile("running|completed"), timeout=STEP_TIMEOUT_MS
    )
    first_progress_s = time.monotonic() - submitted
    run_url = page.url
    assert re.search(r"/runs/[0-9a-f-]{36}$", run_url), run_url

    # Each persona shows up in the progress, then the decision and its chart.
    decision = wait_for_decision(page)
    lines = progress(page)
    assert len(lines) == 7, lines  # expand, five reviews, aggregate
    assert all("completed" in line for line in lines), lines
    chart = page.get_by_role("img", name=re.compile("^Score chart"))
    expect(chart).to_be_visible()
    expect(page.get_by_role("heading", name="Proposal", level=2)).to_be_visible()
    expect(page.get_by_role("heading", name="Reviews", level=2)).to_be_visible()
    assert_accessible(page, "run")
    screenshots(page, "run")
    dark = site.page(dark=True)
    site.sign_in(dark, path=run_url.removeprefix(site.url))
    wait_for_decision(dark)
    assert_accessible(dark, "run-dark")
    screenshots(dark, "run-dark")

    # The README's picture: the run's progress, decision and chart.
    top: FloatRect = {"x": 0, "y": 0, "width": 1280, "height": 1500}
    page.screenshot(path=str(ARTIFACTS / "run-page-top.png"), full_page=True, clip=top)
    weight = run_page_weight(site, run_url.removeprefix(site.url))

    # The runs list finds it by a word of its idea, and not by a word it lacks.
    page.get_by_role("link", name="Runs").click()
    search = page.get_by_role("searchbox", name="Search")
    search.fill("bike-repair")
    expect(page.get_by_role("table").get_by_role("link")).to_have_count(1)
    expect(page.get_by_role("table")).to_contain_text(decision)
    assert_accessible(page, "runs")
    screenshots(page, "runs")
    search.fill("submarine")
    expect(page.get_by_role("table").get_by_role("link")).to_have_count(0)
    search.fill("")

    # Revise with edit notes: the plan is shown before anything is stored.
    page.goto(run_url)
    page.get_by_role("link", name="Revise").click()
    expect(page.get_by_role("heading", name="Revise run", level=1)).to_be_visible()
    page.get_by_label("Edit notes").fill("Add a loyalty discount for returning customers.")
    page.get_by_role("button", name="Preview plan").click()
    plan = page.get_by_role("region", name="Plan")
    expect(plan).to_contain_text("Re-run")
    expect(plan).to_contain_text("Reused")
    assert len(site.api.acme.get("/v1/runs").json()["runs"]) == 1  # a preview stores nothing
    assert_accessible(page, "revise")
    screenshots(page, "revise")
    page.get_by_role("button", name="Submit revision").click()
    expect(page.get_by_role("link", name="Parent run")).to_be_visible()
    revision_url = page.url
    assert revision_url != run_url
    wait_for_decision(page)

    # Compare the revision with its parent.
    page.get_by_role("link", name="Compare with parent").click()
    expect(page.get_by_role("heading", name="Compare runs", level=1)).to_be_visible()
    for heading in ("Proposal changes", "Score moves", "Decision change"):
        expect(page.get_by_role("heading", name=heading, level=2)).to_be_visible()
    assert_accessible(page, "compare")
    screenshots(page, "compare")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    figures = {"run_page_bytes": weight, "submit_to_first_progress_s": first_progress_s}
    (ARTIFACTS / "figures.json").write_text(json.dumps(figures, indent=2))
    print(f"web app figures: {figures}")


def test_a_queued_run_is_cancelled_and_says_why(make_site: SiteFactory) -> None:
    site = make_site(worker=False)  # nothing takes the run: it stays queued
    page = site.page()
    site.sign_in(page)
    page.get_by_role("link", name="New run").click()
    page.get_by_label("Idea").fill(IDEA)
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_text("queued", exact=True)).to_be_visible()  # the run's status
    expect(page.get_by_role("region", name="Progress")).to_contain_text("pending")
    page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_text("This run was cancelled.")).to_be_visible()
    expect(page.get_by_text("cancelled by the user", exact=False)).to_be_visible()
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    run_id = page.url.rsplit("/", 1)[1]
    assert site.api.acme.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled"
    # Without a title yet, the list names the run by the start of its idea.
    page.get_by_role("link", name="Runs").click()
    row = page.get_by_role("table").get_by_role("link", name=re.compile("^Let customers of our"))
    expect(row).to_be_visible()


def test_a_revoked_key_returns_to_sign_in(make_site: SiteFactory) -> None:
    site = make_site(worker=False)
    page = site.page()
    site.sign_in(page, tenant="globex")
    # Another tab of the same person's browser sees nothing of this one: the key lives in
    # this tab's session only.
    other = page.context.new_page()
    other.goto("/")
    expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
    # The key is revoked while the tab holds it: the next request sends the person back to
    # sign in, and says why.
    page.evaluate("sessionStorage.setItem('consensus-engine.api-key', 'ce_revoked')")
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")


def test_a_failed_run_says_why_and_is_retried(site: Site) -> None:
    site.api.stack.llm.push_faults("401")  # the expand call is refused: not retried
    page = site.page()
    site.sign_in(page)
    page.get_by_role("link", name="New run").click()
    page.get_by_label("Idea").fill(IDEA)
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_text("This run failed.")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    assert_accessible(page, "failed-run")
    screenshots(page, "failed-run")
    page.get_by_role("button", name="Retry run").click()
    assert DECISION.match(wait_for_decision(page))
    expect(page.get_by_role("button", name="Retry run")).to_have_count(0)
