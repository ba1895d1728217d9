"""The council on the run page, in Chromium: a run with a debate round and a chair shows the
chair's synthesis marked as model-written, each review's model and provider, and how each
persona's score moved after it read the panel; a chair that failed is retried from the page.

The deployments ask every run for the council (``REVIEW_ROUNDS``, ``CHAIR_MODEL``), so a run
submitted from the new-run form with its defaults has it.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from consensus_engine.devtools.offline_llm import OfflineLLMServer

from .conftest import STEP_TIMEOUT_MS, Site, SiteFactory, assert_accessible, screenshots

IDEA = (
    "Let tenants of a shared workshop reserve the laser cutter by the hour, pay per use, "
    "and see who booked the slot before and after theirs."
)
COUNCIL = {"REVIEW_ROUNDS": "2", "CHAIR_MODEL": "gpt-4.1-mini"}
SCORE_MOVE = re.compile(
    r"^First round \d\.\d\d → \d\.\d\d after reading the panel "
    r"\((up \d\.\d\d|down \d\.\d\d|unchanged)\)$"
)
MODEL_LINE = re.compile(r"^\S+ · \S+$")


@pytest.fixture
def council_site(make_site: SiteFactory) -> Site:
    """Every run reviewed in two rounds and summed up by a chair."""
    return make_site(env=COUNCIL, latency_ms=100)


def submit(page: Page) -> uuid.UUID:
    """Send the form as it stands; the new run's id, from the page it opens."""
    page.get_by_role("button", name="Submit for review").click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    return uuid.UUID(page.url.rsplit("/", 1)[1])


def test_a_council_run_shows_the_chair_models_and_score_moves(council_site: Site) -> None:
    site = council_site
    page = site.page()
    site.sign_in(page)
    page.get_by_role("link", name="New run").click()
    page.get_by_label("Idea").fill(IDEA)
    run_id = submit(page)

    # The chair writes after the decision; its section fills in when it is done.
    chair = page.get_by_role("region", name="Chair's synthesis")
    expect(chair.get_by_text("Model-written.")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    site.api.stack.wait_for(run_id)
    detail = site.api.acme.get(f"/v1/runs/{run_id}").json()
    assert detail["status"] == "completed", detail["status"]
    assert detail["chair"]["status"] == "completed", detail["chair"]

    # Marked as a model's text, by the model and provider that wrote it, apart from the
    # decision the formula made.
    writer = f"{detail['chair']['model']} ({detail['chair']['provider']})"
    expect(chair).to_contain_text(f"Written by {writer}")
    expect(chair).to_contain_text("the decision above comes from the formula, not from this text")
    expect(chair.get_by_text(detail["chair"]["report"]["summary"])).to_be_visible()
    for heading in ("Agreed", "Split", "What would change the outcome"):
        expect(chair.get_by_role("heading", name=heading, level=3)).to_be_visible()

    # Every step shown, the second round and the chair by name.
    progress = page.get_by_role("region", name="Progress")
    personas = len(detail["personas"])
    expect(progress.get_by_role("listitem")).to_have_count(2 + 2 * personas + 1)
    expect(progress.get_by_text(re.compile(r"^Second round: "))).to_have_count(personas)
    expect(progress.get_by_text(re.compile(r"^Chair's synthesis"))).to_be_visible()

    # Each review names its model and provider, and how its score moved in the second round.
    reviews = page.get_by_role("region", name="Reviews").get_by_role("article")
    expect(reviews).to_have_count(personas)
    first = detail["reviews"][0]
    card = reviews.filter(has=page.get_by_role("heading", name=first["persona_name"]))
    expect(card.get_by_text(f"{first['model']} · {first['provider']}", exact=True)).to_be_visible()
    before = first["first_round_review"]["confidence_score"]
    moved = f"First round {before:.2f} → {first['confidence_score']:.2f} after reading the panel"
    expect(card).to_contain_text(moved)
    for review in reviews.all():
        expect(review.get_by_text(MODEL_LINE)).to_have_count(1)
        expect(review.get_by_text(SCORE_MOVE)).to_have_count(1)

    # Nothing to retry: the chair did its work.
    expect(page.get_by_role("button", name=re.compile("^Retry"))).to_have_count(0)
    assert_accessible(page, "council-run")
    screenshots(page, "council-run")


def test_the_new_run_form_offers_the_council(council_site: Site) -> None:
    site = council_site
    page = site.page()
    site.sign_in(page)
    page.get_by_role("link", name="New run").click()
    page.get_by_label("Idea").fill(IDEA)
    personas = page.get_by_role("group", name="Personas")
    models = personas.get_by_role("combobox", name=re.compile("^Model for "))
    expect(models).to_have_count(personas.get_by_role("checkbox").count())
    council = page.get_by_role("group", name="Council")
    expect(council.get_by_role("checkbox", name="Debate round")).not_to_be_checked()
    expect(council.get_by_role("radio", name="Deployment default")).to_be_checked()
    assert_accessible(page, "council-new-run")
    screenshots(page, "council-new-run")

    # What is sent is what was changed: one persona's model, one round, no chair.
    models.first.select_option("gpt-4.1-mini")
    council.get_by_role("radio", name="Off").click()
    expect(council.get_by_role("combobox", name="Chair model")).to_be_disabled()
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/v1/runs")) as sent:
        run_id = submit(page)
    body = sent.value.post_data_json
    assert isinstance(body, dict), body
    assert body["chair"] is False
    assert "chair_model" not in body and "review_rounds" not in body
    assert list(body["persona_models"].values()) == ["gpt-4.1-mini"]
    # The deployment's two rounds still hold; the chair does not.
    expect(page.get_by_role("region", name="Progress")).to_contain_text("Second round")
    expect(page.get_by_role("region", name="Chair's synthesis")).to_have_count(0)
    site.api.stack.wait_for(run_id)


def test_a_failed_chair_says_why_and_is_retried(make_site: SiteFactory) -> None:
    # The chair's model has a server of its own, so its failure hits the chair alone.
    with OfflineLLMServer(latency_ms=50) as chair_server:
        providers = {"chair": {"base_url": chair_server.base_url}}
        catalogue = {"gpt-4.1-mini": {}, "chair-model": {"provider": "chair", "free": True}}
        settings = {
            "CHAIR_MODEL": "chair-model",
            "LLM_PROVIDERS_JSON": json.dumps(providers),
            "MODEL_CATALOGUE_JSON": json.dumps(catalogue),
        }
        site = make_site(env=settings, latency_ms=100)
        chair_server.push_faults("401")  # refused: not retried, the chair step fails
        page = site.page()
        site.sign_in(page)
        page.get_by_role("link", name="New run").click()
        page.get_by_label("Idea").fill(IDEA)
        run_id = submit(page)

        chair = page.get_by_role("region", name="Chair's synthesis")
        expect(chair).to_contain_text(
            "The chair could not write its synthesis.", timeout=STEP_TIMEOUT_MS
        )
        expect(chair).to_contain_text("The decision above stands.")
        detail = site.api.acme.get(f"/v1/runs/{run_id}").json()
        assert (detail["status"], detail["chair"]["status"]) == ("completed", "failed"), detail
        expect(page.get_by_role("link", name="Revise")).to_be_visible()  # the run is completed
        assert_accessible(page, "council-chair-failed")
        screenshots(page, "council-chair-failed")

        # Retry runs the chair alone, now that its server answers.
        page.get_by_role("button", name="Retry the chair").click()
        expect(chair.get_by_text("Model-written.")).to_be_visible(timeout=STEP_TIMEOUT_MS)
        expect(chair).to_contain_text("Written by chair-model (chair)")
        expect(page.get_by_role("button", name="Retry the chair")).to_have_count(0)
        site.api.stack.wait_for(run_id)
        after = site.api.acme.get(f"/v1/runs/{run_id}").json()
        assert after["chair"]["status"] == "completed", after["chair"]
        assert after["decision"] == detail["decision"]  # the chair alone ran again
