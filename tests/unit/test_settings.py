"""Settings: defaults from the deployment guide, one-line errors, secrets kept out of reprs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consensus_engine.settings import Settings, SettingsError, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"

GUIDE_DEFAULTS = {
    "DB_NAME": "consensus_engine",
    "PUBSUB_TOPIC": "consensus-engine-jobs",
    "PUBSUB_SUBSCRIPTION": "consensus-engine-jobs-sub",
    "WORKER_MAX_CONCURRENCY": 10,
    "WORKER_ACK_DEADLINE_SECONDS": 600,
    "WORKER_STEP_TIMEOUT_SECONDS": 300,
    "WORKER_JOB_TIMEOUT_SECONDS": 1800,
    "MAX_RETRIES_PER_PERSONA": 3,
    "RETRY_INITIAL_BACKOFF_SECONDS": 1.0,
    "RETRY_BACKOFF_MULTIPLIER": 2.0,
    "PUBSUB_USE_MOCK": False,
    "DB_IAM_AUTH": False,
    "USE_CLOUD_SQL_CONNECTOR": False,
}

GUIDE_NAMES = {
    "OPENAI_API_KEY",
    "DB_INSTANCE_CONNECTION_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_HOST",
    "DB_PORT",
    "PUBSUB_PROJECT_ID",
    "PUBSUB_EMULATOR_HOST",
    "ENV",
    *GUIDE_DEFAULTS,
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test sees only the variables it sets (no .env, no inherited values)."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_guide_defaults() -> None:
    settings = load_settings()
    for name, expected in GUIDE_DEFAULTS.items():
        assert getattr(settings, name.lower()) == expected, name


def test_every_guide_variable_is_a_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    assert GUIDE_NAMES - fields == set()


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("WORKER_MAX_CONCURRENCY", "0", "WORKER_MAX_CONCURRENCY"),
        ("WORKER_ACK_DEADLINE_SECONDS", "abc", "WORKER_ACK_DEADLINE_SECONDS"),
        ("ENV", "staging", "ENV"),
        ("EXPAND_TEMPERATURE", "2.5", "EXPAND_TEMPERATURE"),
        ("OPENAI_API_KEY", "your_api_key_here", "OPENAI_API_KEY"),
        ("REVISE_THRESHOLD", "0.9", "REVISE_THRESHOLD must be lower"),
        ("USE_CLOUD_SQL_CONNECTOR", "true", "DB_INSTANCE_CONNECTION_NAME is required"),
        ("API_METRICS_PORT", "8000", "API_METRICS_PORT must differ from API_PORT"),
        ("WEBHOOK_RETRY_DELAYS_SECONDS", "5,soon", "WEBHOOK_RETRY_DELAYS_SECONDS"),
        ("WEBHOOK_RETRY_DELAYS_SECONDS", "5,0", "every one above 0 seconds"),
    ],
)
def test_wrong_value_fails_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert fragment in message


def test_placeholder_key_error_does_not_echo_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-placeholder-1234567890")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "1234567890" not in str(caught.value)


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-secret-value")
    monkeypatch.setenv("DB_PASSWORD", "hunter2-db-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:url-secret@h/db")
    settings = load_settings()
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "sk-live-secret-value" not in text
        assert "hunter2-db-secret" not in text
        assert "url-secret" not in text


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WORKER_MAX_CONCURRENCY=7\nENV=production\n")
    settings = load_settings()
    assert settings.worker_max_concurrency == 7
    assert settings.is_production


def test_readme_documents_every_setting() -> None:
    """The README's table and the Settings class list the same variables."""
    text = README.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", text, flags=re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert documented - fields == set(), "README documents unknown settings"
    assert fields - documented == set(), "settings missing from the README table"
