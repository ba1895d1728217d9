"""Configuration: one typed class read from the environment and ``.env``.

Nothing else in the project reads ``os.environ``; every component receives a
:class:`Settings` (or the few values it needs) from its caller.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consensus_engine.domain.budgets import BudgetConfigError, Budgets

Temperature = Annotated[float, Field(ge=0.0, le=2.0)]


class SettingsError(ValueError):
    """A configuration value is wrong; the message is one line naming the variable."""


class Settings(BaseSettings):
    """Every setting of the API, the worker and the CLI.

    Field names are the environment variables, lower-cased; the README's table
    lists them all (a test keeps the two in sync).
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # Environment
    env: Literal["development", "production", "testing"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None
    google_cloud_project: str | None = None

    # Tracing (off unless an OTLP endpoint is set)
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = Field(default="consensus-engine", min_length=1)

    # LLM
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llm_api_mode: Literal["auto", "responses", "chat", "chat_json_object"] = "auto"
    llm_timeout_seconds: float = Field(default=120.0, gt=0, le=900)
    llm_sdk_max_retries: int = Field(default=0, ge=0, le=5)
    llm_repair_attempts: int = Field(default=1, ge=0, le=3)
    llm_max_output_tokens: int = Field(default=4096, ge=256, le=128_000)
    llm_prices_json: str | None = None
    model_catalogue_file: Path | None = None
    model_catalogue_json: str | None = None
    llm_capacity_wait_seconds: float = Field(default=2.0, ge=0, le=60)
    expand_model: str = Field(default="gpt-4.1-mini", min_length=1)
    expand_temperature: Temperature | None = 0.7
    review_model: str = Field(default="gpt-4.1-mini", min_length=1)
    review_temperature: Temperature | None = 0.2
    llm_providers_json: str | None = None
    review_rounds: int = Field(default=1, ge=1, le=2)
    chair_model: str | None = Field(default=None, min_length=1)
    chair_fallback_model: str | None = Field(default=None, min_length=1)
    chair_temperature: Temperature | None = 0.3

    # Database
    database_url: SecretStr | None = None
    db_instance_connection_name: str | None = None
    db_name: str = "consensus_engine"
    db_user: str = "postgres"
    db_password: SecretStr | None = None
    db_host: str = "localhost"
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_iam_auth: bool = False
    use_cloud_sql_connector: bool = False
    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_max_overflow: int = Field(default=10, ge=0, le=100)
    db_pool_timeout: float = Field(default=30.0, gt=0, le=600)
    db_pool_recycle: int = Field(default=3600, ge=60, le=7200)

    # Pub/Sub
    pubsub_project_id: str = "local-project"
    pubsub_topic: str = "consensus-engine-jobs"
    pubsub_subscription: str = "consensus-engine-jobs-sub"
    pubsub_emulator_host: str | None = None
    pubsub_use_mock: bool = False
    pubsub_delivery: Literal["pull", "push"] = "pull"
    pubsub_auto_create: bool | None = None
    pubsub_max_delivery_attempts: int = Field(default=5, ge=5, le=100)
    pubsub_publish_timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    # Worker
    worker_max_concurrency: int = Field(default=10, ge=1, le=1000)
    worker_ack_deadline_seconds: int = Field(default=600, ge=10, le=600)
    worker_step_timeout_seconds: int = Field(default=300, ge=1, le=1800)
    worker_claim_timeout_seconds: float = Field(default=15.0, ge=3, le=3600)
    worker_job_timeout_seconds: int = Field(default=1800, ge=10, le=7200)
    max_retries_per_persona: int = Field(default=3, ge=0, le=10)
    retry_initial_backoff_seconds: float = Field(default=1.0, ge=0.1, le=60)
    retry_backoff_multiplier: float = Field(default=2.0, ge=1.0, le=10)
    retry_max_backoff_seconds: float = Field(default=300.0, ge=1, le=86_400)
    worker_processes: int = Field(default=1, ge=1, le=64)
    worker_shutdown_timeout_seconds: int = Field(default=60, ge=1, le=3600)
    worker_http_host: str = "0.0.0.0"  # noqa: S104 - probes and Pub/Sub push reach it from outside
    worker_http_port: int = Field(default=8080, ge=0, le=65535)
    worker_metrics_port: int = Field(default=9191, ge=0, le=65535)
    review_quorum: int | None = Field(default=None, ge=1, le=50)
    sweeper_interval_seconds: float = Field(default=30.0, ge=0.5, le=3600)
    sweeper_requeue_after_seconds: float = Field(default=30.0, ge=1, le=3600)
    sweeper_resend_unstarted_after_seconds: float = Field(default=120.0, ge=1, le=86_400)
    run_retention_days: int | None = Field(default=None, ge=1, le=36_500)
    pubsub_push_endpoint: str | None = None
    pubsub_push_audience: str | None = None
    pubsub_push_service_account: str | None = None

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_metrics_port: int = Field(default=9190, ge=0, le=65535)
    api_keys: SecretStr | None = None
    api_keys_file: Path | None = None
    api_auth_disabled: bool = False
    api_rate_limit_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    api_rate_limit_burst: int = Field(default=100, ge=1, le=100_000)
    api_max_runs_in_flight: int = Field(default=100, ge=1, le=1_000_000)
    api_max_body_bytes: int = Field(default=1_000_000, ge=1_000, le=100_000_000)
    api_sync_timeout_seconds: float = Field(default=120.0, gt=0, le=900)
    api_sync_max_per_tenant: int = Field(default=8, ge=1, le=1_000)
    api_max_streams_per_key: int = Field(default=5, ge=1, le=10_000)
    api_max_streams_per_replica: int = Field(default=200, ge=1, le=100_000)
    api_docs_enabled: bool | None = None
    web_app_enabled: bool = True
    cors_origins: str | None = None
    tenant_budgets_json: str | None = None
    webhook_allow_private_targets: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_delays_seconds: str = "5,300,1800,7200,18000,36000,36000"
    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None

    # Consensus
    personas_file: Path | None = None
    approve_threshold: float = Field(default=0.80, gt=0.0, le=1.0)
    revise_threshold: float = Field(default=0.60, ge=0.0, lt=1.0)

    # Input limits (enforced by the API and the domain)
    max_idea_length: int = Field(default=10_000, ge=1, le=1_000_000)
    max_extra_context_length: int = Field(default=50_000, ge=0, le=1_000_000)
    max_edited_proposal_length: int = Field(default=100_000, ge=1, le=1_000_000)
    max_edit_notes_length: int = Field(default=10_000, ge=1, le=1_000_000)
    min_persona_count: int = Field(default=1, ge=1, le=50)
    max_persona_count: int = Field(default=10, ge=1, le=50)

    @field_validator("openai_api_key")
    @classmethod
    def _reject_placeholder_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not raw:
            return None
        lowered = raw.lower()
        if "your_api_key" in lowered or "placeholder" in lowered:
            raise ValueError("looks like a placeholder, not a real key")
        return SecretStr(raw)

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: str | None) -> str | None:
        """Each entry an exact origin (scheme, host, optional port), never ``*``: the API's
        answers are for the tenant whose key a page holds, not for any site."""
        if value is None or not value.strip():
            return None
        origins = [origin.strip() for origin in value.split(",") if origin.strip()]
        for origin in origins:
            if origin == "*":
                raise ValueError(
                    "'*' is not allowed; list each origin, e.g. https://app.example.com"
                )
            parts = urlsplit(origin)
            exact = f"{parts.scheme}://{parts.netloc}"
            if parts.scheme not in ("http", "https") or not parts.netloc or origin != exact:
                raise ValueError(
                    f"{origin!r} is not an origin: scheme and host (and port) only, "
                    "e.g. https://app.example.com"
                )
        return ",".join(origins)

    @model_validator(mode="after")
    def _check_relations(self) -> Settings:
        try:
            self.webhook_retry_delays  # noqa: B018 - parsed here so that a bad setting stops start-up
        except ValueError as error:
            raise ValueError(f"WEBHOOK_RETRY_DELAYS_SECONDS: {error}") from None
        if self.revise_threshold >= self.approve_threshold:
            raise ValueError(
                "REVISE_THRESHOLD must be lower than APPROVE_THRESHOLD "
                f"(got {self.revise_threshold} and {self.approve_threshold})"
            )
        if self.min_persona_count > self.max_persona_count:
            raise ValueError("MIN_PERSONA_COUNT must not exceed MAX_PERSONA_COUNT")
        if self.api_metrics_port == self.api_port:
            raise ValueError("API_METRICS_PORT must differ from API_PORT (0 turns metrics off)")
        if self.api_auth_disabled and self.is_production:
            raise ValueError("API_AUTH_DISABLED must not be set with ENV=production")
        if self.pubsub_push_audience and not self.pubsub_push_service_account:
            raise ValueError("PUBSUB_PUSH_AUDIENCE needs PUBSUB_PUSH_SERVICE_ACCOUNT")
        must_verify = self.is_production or self.pubsub_push_service_account is not None
        can_verify = bool(self.pubsub_push_service_account and self.pubsub_push_token_audience)
        if self.pubsub_delivery == "push" and must_verify and not can_verify:
            raise ValueError(
                "PUBSUB_DELIVERY=push needs PUBSUB_PUSH_SERVICE_ACCOUNT and "
                "PUBSUB_PUSH_ENDPOINT (or PUBSUB_PUSH_AUDIENCE) in production, and an "
                "audience whenever the service account is set, so that only Pub/Sub's "
                "signed requests run messages"
            )
        try:
            self.budgets  # noqa: B018 - parsed here so that a bad setting stops start-up
        except BudgetConfigError as error:
            raise ValueError(f"TENANT_BUDGETS_JSON: {error}") from None
        if self.chair_fallback_model and not self.chair_model:
            raise ValueError("CHAIR_FALLBACK_MODEL needs CHAIR_MODEL")
        if self.use_cloud_sql_connector and not self.db_instance_connection_name:
            raise ValueError(
                "DB_INSTANCE_CONNECTION_NAME is required when USE_CLOUD_SQL_CONNECTOR=true"
            )
        return self

    @property
    def pubsub_creates_resources(self) -> bool:
        """``PUBSUB_AUTO_CREATE`` if set; otherwise on for the emulator and outside production."""
        if self.pubsub_auto_create is not None:
            return self.pubsub_auto_create
        return self.pubsub_emulator_host is not None or not self.is_production

    @property
    def pubsub_push_token_audience(self) -> str | None:
        """The audience a push request's token must name: ``PUBSUB_PUSH_AUDIENCE``, else the
        push endpoint (which Pub/Sub itself uses when no audience is configured)."""
        return self.pubsub_push_audience or self.pubsub_push_endpoint

    @functools.cached_property
    def budgets(self) -> Budgets:
        """Every tenant's budget (``TENANT_BUDGETS_JSON``; none set: no limits), parsed once."""
        return Budgets.from_json(self.tenant_budgets_json)

    @property
    def configured_models(self) -> dict[str, str]:
        """Each model setting in use, by variable: the catalogue must allow every one."""
        named = {
            "EXPAND_MODEL": self.expand_model,
            "REVIEW_MODEL": self.review_model,
            "CHAIR_MODEL": self.chair_model,
            "CHAIR_FALLBACK_MODEL": self.chair_fallback_model,
        }
        return {variable: model for variable, model in named.items() if model}

    @property
    def metric_models(self) -> frozenset[str]:
        """The models metrics name (the model settings'); any other model a request or a
        persona names, even one the catalogue allows, is counted as ``other``."""
        return frozenset(self.configured_models.values())

    @staticmethod
    def secret_variable(name: str) -> SecretStr | None:
        """The value of the environment variable a setting names (a provider's key), so
        that a JSON setting never holds the secret itself."""
        value = os.environ.get(name, "").strip()
        return SecretStr(value) if value else None

    @functools.cached_property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """``WEBHOOK_RETRY_DELAYS_SECONDS`` as numbers, parsed once: the wait before each
        retry."""
        value = self.webhook_retry_delays_seconds
        try:
            delays = tuple(float(part) for part in value.split(",") if part.strip())
        except ValueError:
            raise ValueError("a comma-separated list of seconds, e.g. 5,300,1800") from None
        if not delays or any(delay <= 0 for delay in delays):
            raise ValueError("at least one delay, every one above 0 seconds")
        return delays

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """``CORS_ORIGINS`` as a list: the other sites whose pages may call the API."""
        return tuple(self.cors_origins.split(",")) if self.cors_origins else ()

    @property
    def serves_docs(self) -> bool:
        """``API_DOCS_ENABLED`` if set; otherwise the docs are served outside production."""
        if self.api_docs_enabled is not None:
            return self.api_docs_enabled
        return not self.is_production

    @property
    def json_logs(self) -> bool:
        """Log JSON lines everywhere but a developer's terminal (machines read the rest)."""
        return self.env != "development"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def log_trace_project(self) -> str | None:
        """The project Cloud Logging links log lines to traces in: production only."""
        return self.google_cloud_project if self.is_production else None

    @property
    def effective_log_level(self) -> str:
        """Explicit ``LOG_LEVEL`` wins; otherwise chatty in development, terse in production."""
        if self.log_level:
            return self.log_level
        return {"development": "DEBUG", "testing": "INFO", "production": "INFO"}[self.env]


def _describe(error: ValidationError) -> str:
    """One line naming the variable and the problem, never echoing the value of a secret."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    if not loc:
        return f"invalid configuration: {message}"
    name = loc[0].upper()
    extra = f" (and {len(error.errors()) - 1} more)" if len(error.errors()) > 1 else ""
    return f"invalid configuration: {name}: {message}{extra}"


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's report into a :class:`SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
