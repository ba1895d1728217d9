"""The web app in a real browser: Debian's Chromium driven by Playwright, against the API
serving the built app, a real worker, PostgreSQL and the Pub/Sub emulator.

Playwright cannot download browsers here, so it drives the ``chromium`` that ``make tools``
installs, by its path. Every page a test opens is watched: a request to anywhere but the
deployment, or an error in the console (a Content-Security-Policy violation included),
fails the test. Screenshots go to ``.artifacts/web/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from api.conftest import ApiFactory, ApiHarness, make_api  # noqa: F401 - the fixture
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect, sync_playwright

from consensus_engine.api.web_app import STATIC, built
from consensus_engine.devtools.stack import REPO_ROOT

ARTIFACTS = REPO_ROOT / ".artifacts" / "web"
# Headless, and quiet: without the background-networking flags Chromium keeps trying to
# reach Google's hosts, which this closed network refuses.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 780}
STEP_TIMEOUT_MS = 60_000
RESOURCE_STATUS = "Failed to load resource: the server responded with a status of 4"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed: run `make tools`"
    assert built(), f"the web app is not built into {STATIC}: run `make web`"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@dataclass
class Site:
    """The deployment under test and the browser pages opened on it."""

    api: ApiHarness
    browser: Browser
    foreign: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    """Script errors and Content-Security-Policy violations."""

    @property
    def url(self) -> str:
        return self.api.base_url

    def page(self, *, viewport: dict[str, int] = DESKTOP, dark: bool = False) -> Page:
        """A new tab (its own session storage, so signed out) on the site."""
        context = self.browser.new_context(
            viewport=viewport,  # type: ignore[arg-type]
            color_scheme="dark" if dark else "light",
            base_url=self.url,
        )
        context.set_default_timeout(15_000)
        page = context.new_page()

        def watch(request: Request) -> None:
            if not request.url.startswith((self.url, "data:", "blob:")):
                self.foreign.append(request.url)

        def console(message: ConsoleMessage) -> None:
            # Chromium logs every 4xx answer too; the tests check those answers themselves.
            if message.type == "error" and not message.text.startswith(RESOURCE_STATUS):
                self.console_errors.append(message.text)

        page.on("request", watch)
        page.on("console", console)
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        return page

    def sign_in(self, page: Page, tenant: str = "acme", path: str = "/") -> None:
        page.goto(path)
        page.get_by_label("API key").fill(self.api.keys[tenant])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text(f"Signed in as {tenant}")).to_be_visible()


SiteFactory = Callable[..., Site]


@pytest.fixture
def make_site(make_api: ApiFactory, browser: Browser) -> Iterator[SiteFactory]:  # noqa: F811
    """``make_site(worker=True, env={...}, latency_ms=300)``: the API with the app, deployed
    with the settings ``env`` adds, and unless told otherwise a worker (the offline LLM
    answers after ``latency_ms``, so each step is seen running)."""
    sites: list[Site] = []

    def make(
        *, worker: bool = True, env: dict[str, str] | None = None, latency_ms: int = 300
    ) -> Site:
        api = make_api(env=env, latency_ms=latency_ms)
        if worker:
            api.stack.start_worker()
        sites.append(Site(api, browser))
        return sites[-1]

    yield make
    for site in sites:
        assert site.foreign == [], "requests left the deployment"
        assert site.console_errors == [], "the browser console showed errors"


@pytest.fixture
def site(make_site: SiteFactory) -> Site:
    return make_site()


def screenshots(page: Page, name: str) -> None:
    """Keep what the page looks like now, 1280 and 360 px wide, as test artefacts; and check
    that at 360 px nothing is wider than the screen."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)  # type: ignore[arg-type]
        page.screenshot(path=str(ARTIFACTS / f"{name}-{size['width']}.png"), full_page=True)
        if size is PHONE:
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= PHONE["width"], f"{name} scrolls sideways at 360 px ({overflow})"
    page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]


def assert_accessible(page: Page, name: str) -> None:
    """axe-core in the page: no serious or critical violation."""
    results = Axe().run(page)
    serious = [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + "; ".join(node["target"][0] for node in violation["nodes"][:3])
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{name}: " + "\n".join(serious)
