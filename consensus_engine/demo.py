"""``make demo``: one sample idea through the real worker, broker and database.

It starts what is missing and stops it afterwards: the offline LLM server unless
``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set (its answers are synthetic, and it
says so), a Pub/Sub server unless ``PUBSUB_EMULATOR_HOST`` is set (Google's emulator
where the Cloud SDK's jar and Java are installed, else the embedded one; it says which),
a PostgreSQL database (or an SQLite file when no server answers), and a worker process
(``python -m consensus_engine.workers.pipeline_worker``). With ``--serve`` it then keeps
all of it running, adds the API with the web app, and prints the run page's address and
the key to sign in with, until Ctrl-C or SIGTERM (either stops everything it started).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from consensus_engine.db import reads
from consensus_engine.db.engine import create_engine_from_settings, session_factory
from consensus_engine.db.migrations import upgrade_head
from consensus_engine.db.models import Run
from consensus_engine.devtools.database import local_database
from consensus_engine.devtools.local_pubsub import accepts_grpc, local_pubsub
from consensus_engine.devtools.process import free_port, sigterm_interrupts
from consensus_engine.devtools.service import running_worker, start_api
from consensus_engine.domain.inputs import validate_idea
from consensus_engine.domain.schemas import Decision, PersonaReview
from consensus_engine.jobs import job_sender
from consensus_engine.messaging import build_broker
from consensus_engine.pipeline.config import expand_choice, personas_from_settings, review_choice
from consensus_engine.pipeline.service import NewRun, RunService
from consensus_engine.settings import Settings, get_settings, load_settings

SAMPLE_IDEA = (
    "Let customers of our bike-repair shops book a repair slot online, see the price "
    "estimate up front, and get a text message when the bike is ready."
)
DEMO_DIR = Path(".demo")
DEMO_TENANT = "demo"
_TIMEOUT_SECONDS = 600.0


class DemoError(RuntimeError):
    """Something the demo needs could not be started; the message says what."""


@contextlib.contextmanager
def _llm(settings: Settings) -> Iterator[dict[str, str]]:
    if settings.openai_api_key is not None or settings.openai_base_url is not None:
        target = settings.openai_base_url or "OpenAI"
        print(f"LLM:      {target} (models {settings.expand_model} / {settings.review_model})")
        yield {}
        return
    from consensus_engine.devtools.offline_llm import OfflineLLMServer

    with OfflineLLMServer(latency_ms=150) as server:
        print(
            f"LLM:      no OPENAI_API_KEY or OPENAI_BASE_URL, so the built-in offline server at "
            f"{server.base_url}.\n          Its content is SYNTHETIC: it shows the pipeline "
            "working, not a real judgement."
        )
        yield {"OPENAI_BASE_URL": server.base_url}


@contextlib.contextmanager
def _pubsub(settings: Settings) -> Iterator[dict[str, str]]:
    configured = settings.pubsub_emulator_host
    if configured and not accepts_grpc(configured):
        raise DemoError(f"no Pub/Sub emulator: PUBSUB_EMULATOR_HOST={configured} does not answer")
    with local_pubsub(configured) as pubsub:
        print(f"Pub/Sub:  {pubsub.description}")
        yield {"PUBSUB_EMULATOR_HOST": pubsub.host, "PUBSUB_AUTO_CREATE": "true"}


def _progress(sessions: sessionmaker[Session], run_id: uuid.UUID, started: float) -> Run:
    """Print each step's changes until the run ends; the finished run."""
    seen: dict[str, tuple[str, int]] = {}
    deadline = time.monotonic() + _TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with sessions() as session:
            run = reads.get_run(session, run_id, tenant=None, detailed=True)
            assert run is not None, "the demo's run was stored before it was followed"
            for step in run.steps:
                state = (step.status.value, step.attempts)
                if seen.get(step.step_name) != state:
                    seen[step.step_name] = state
                    note = f"  attempt {step.attempts}" if step.attempts > 1 else ""
                    reused = "  (reused)" if step.step_metadata.get("reused") else ""
                    print(
                        f"  [{time.monotonic() - started:6.2f}s] {step.step_name:<28} "
                        f"{step.status.value}{note}{reused}"
                    )
            if run.status.is_terminal:
                return run
        time.sleep(0.1)
    raise DemoError(f"run {run_id} did not finish within {_TIMEOUT_SECONDS:.0f} s")


def _print_decision(decision: Decision, reviews: list[PersonaReview]) -> None:
    print(
        f"\nDecision: {decision.decision.upper()}  (weighted confidence "
        f"{decision.overall_weighted_confidence:.3f})"
    )
    breakdown = decision.score_breakdown
    print(f"  formula: {breakdown.formula}")
    for review in reviews:
        pid = review.persona_id
        print(
            f"  {review.persona_name:<20} score {breakdown.individual_scores[pid]:.2f}"
            f"  weight {breakdown.weights[pid]:.2f}"
            f"  contribution {breakdown.weighted_contributions[pid]:.3f}"
            f"  blocking points {len(review.blocking_texts)}"
        )
    for rule in decision.rules_applied:
        print(f"  rule: {rule}")
    for report in decision.minority_reports:
        print(
            f"  minority report, {report.persona_name} ({report.position}): "
            f"{report.blocking_summary}"
        )
    print(f"\n{decision.rationale}")


def _report(run: Run, elapsed: float) -> int:
    if run.decision_record is None:
        print(f"\nThe run {run.status.value}: {run.error_code}: {run.error}")
        return 1
    decision = Decision.model_validate(run.decision_record.decision_json)
    reviews = [PersonaReview.model_validate(row.review) for row in run.reviews]
    _print_decision(decision, reviews)
    print(
        f"\nRun {run.id}: {run.input_tokens + run.output_tokens} tokens, "
        f"${run.cost_usd:.4f}, {elapsed:.2f}s from submission to decision"
    )
    return 0


def _serve(env: dict[str, str], run_id: uuid.UUID) -> None:
    """The API (and the web app) on the demo's stack until Ctrl-C, for the demo's tenant."""
    from consensus_engine.api.web_app import built

    log_path = DEMO_DIR / "api.log"
    api = start_api({**env, "API_HOST": "127.0.0.1"}, log_path, tenant=DEMO_TENANT)
    try:
        print(f"\nAPI:      {api.base_url}/docs (log {log_path})")
        if built():
            print(f"Web app:  {api.base_url}/runs/{run_id}")
        else:
            print("Web app:  not built; `make web` builds it (Node.js and npm)")
        print(f"API key:  {api.key}  (tenant {DEMO_TENANT!r}; it lasts as long as this demo)")
        print("Press Ctrl-C to stop everything.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            api.popen.wait()  # the API runs in its own session: Ctrl-C or SIGTERM reach only us
        if api.popen.returncode is not None:
            raise DemoError(f"the API stopped (exit {api.popen.returncode}); see {log_path}")
    finally:
        api.stop(timeout=10)


def run_demo(idea: str | None = None, *, serve: bool = False) -> int:
    settings = get_settings()
    personas = personas_from_settings(settings)
    text = validate_idea(SAMPLE_IDEA if idea is None else idea, max_length=settings.max_idea_length)
    print(f"Idea:     {text}\nPersonas: {', '.join(personas.ids)}")
    with sigterm_interrupts(), contextlib.ExitStack() as stack:
        overrides: dict[str, str] = {}
        overrides |= stack.enter_context(_llm(settings))
        overrides |= stack.enter_context(_pubsub(settings))
        database = local_database(settings, DEMO_DIR)
        print(f"Database: {database.description}")
        if database.url is not None:
            overrides["DATABASE_URL"] = database.url
        http_port = free_port()
        overrides |= {
            "WORKER_HTTP_PORT": str(http_port),
            "WORKER_METRICS_PORT": "0",
            "dramatiq_prom_db": stack.enter_context(tempfile.TemporaryDirectory(prefix="ce-")),
        }
        demo_settings = load_settings(
            **{name.lower(): value for name, value in overrides.items() if name.isupper()}
        )
        upgrade_head(database.url)
        log_path = DEMO_DIR / "worker.log"
        worker = stack.enter_context(running_worker(os.environ | overrides, log_path))
        print(
            f"Worker:   python -m consensus_engine.workers.pipeline_worker "
            f"(pid {worker.pid}, log {log_path})\n"
        )
        engine = create_engine_from_settings(demo_settings)
        stack.callback(engine.dispose)
        sessions = session_factory(engine)
        broker = build_broker(demo_settings, "plain")
        stack.callback(broker.close)
        service = RunService(
            sessions,
            job_sender(broker, demo_settings),
            job_timeout_seconds=demo_settings.worker_job_timeout_seconds,
        )
        started = time.monotonic()
        new = NewRun(
            idea=text,
            personas=personas,
            expand=expand_choice(demo_settings),
            review=review_choice(demo_settings),
        )
        run_id = service.submit(new, tenant=DEMO_TENANT).run.id
        run = _progress(sessions, run_id, started)
        status = _report(run, time.monotonic() - started)
        if serve:
            _serve(os.environ | overrides, run_id)
        return status
    return 1
