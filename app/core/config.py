"""The one place where configuration is read.

`Settings()` reads the environment (and `.env`) once; the object is then passed
down explicitly. Nothing else in the code base looks at `os.environ`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from limits import parse_many
from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "insecure-development-secret-change-me"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./.data/groundwork.db"
MIN_SECRET_BYTES = 32
MIB = 1024 * 1024

RateLimitStrategy = Literal["sliding-window-counter", "moving-window", "fixed-window"]
# Lists are comma-separated in the environment (`A,B`), not JSON.
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    app_env: Literal["development", "test", "production"] = "development"
    debug: bool = False
    open_registration: bool = True

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)

    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)
    db_pool_pre_ping: bool = True
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_echo: bool = False

    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    jwt_issuer: str = "groundwork"
    jwt_audience: str = "groundwork-api"
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=300)
    password_reset_ttl_seconds: int = Field(default=1800, ge=60, le=86_400)

    mail_backend: Literal["console", "smtp", "memory"] = "console"
    mail_from: str = "Groundwork <no-reply@localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # Where the reset email points; `{token}` is replaced. Unset: the token alone.
    password_reset_url: str | None = None

    password_hash_memory_kib: int = Field(default=19_456, ge=19_456)
    password_hash_time_cost: int = Field(default=2, ge=2)
    password_hash_parallelism: int = Field(default=1, ge=1)
    password_hash_concurrency: int = Field(default=2, ge=1)

    idempotency_ttl_seconds: int = Field(default=86_400, ge=60)
    health_check_timeout_seconds: float = Field(default=2.0, gt=0)

    redis_url: str | None = None
    redis_timeout_seconds: float = Field(default=1.0, gt=0)

    rate_limit_enabled: bool = True
    rate_limit_default: str = "600/minute"
    rate_limit_login: str = "30/minute"
    rate_limit_register: str = "20/minute"
    rate_limit_refresh: str = "60/minute"
    rate_limit_password_reset: str = "5/minute"
    login_lockout_account: str = "5/15 minutes"
    login_lockout_client: str = "50/15 minutes"
    rate_limit_strategy: RateLimitStrategy = "sliding-window-counter"
    rate_limit_login_strategy: RateLimitStrategy = "moving-window"
    rate_limit_storage_timeout_seconds: float = Field(default=0.5, gt=0)
    rate_limit_fail_open: bool = True

    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    trusted_proxy_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    trusted_hosts: CommaList = Field(default_factory=lambda: ["*"])
    cors_origins: CommaList = Field(default_factory=list)
    cors_allow_credentials: bool = False
    max_body_bytes: int = Field(default=MIB, ge=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    docs_enabled: bool = True

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] | None = None

    # /metrics: open outside production; in production only with this bearer
    # token or from one of these networks (comma-separated CIDRs).
    metrics_token: SecretStr | None = None
    metrics_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    # Set: metrics are shared by every worker process through files here
    # (prometheus_client's multiprocess mode). Cleared by `serve` at start-up.
    prometheus_multiproc_dir: Path | None = None

    # The standard OpenTelemetry variables, read here like every other setting.
    # Tracing is off unless an OTLP endpoint is set.
    otel_sdk_disabled: bool = False
    otel_service_name: str = "groundwork"
    otel_resource_attributes: str = ""
    otel_traces_exporter: Literal["otlp", "none"] = "otlp"
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_exporter_otlp_protocol: Literal["http/protobuf"] = "http/protobuf"
    otel_exporter_otlp_headers: SecretStr | None = None
    otel_exporter_otlp_timeout: int = Field(default=10_000, gt=0)
    otel_traces_sampler: Literal[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ] = "parentbased_always_on"
    otel_traces_sampler_arg: float = Field(default=1.0, ge=0.0, le=1.0)

    first_admin_email: str | None = None
    first_admin_password: SecretStr | None = None

    @field_validator(
        "trusted_proxies",
        "trusted_hosts",
        "cors_origins",
        "metrics_allowed_networks",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "rate_limit_default",
        "rate_limit_login",
        "rate_limit_register",
        "rate_limit_refresh",
        "rate_limit_password_reset",
        "login_lockout_account",
        "login_lockout_client",
    )
    @classmethod
    def _one_limit(cls, value: str) -> str:
        try:
            parsed = parse_many(value)
        except ValueError:
            parsed = []
        if len(parsed) != 1:
            raise ValueError("expected one limit such as `600/minute` or `5/15 minutes`")
        return value

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "console" if self.app_env == "development" else "json"

    @property
    def otlp_traces_endpoint(self) -> str | None:
        """Where spans are sent, or None when tracing is off."""
        if self.otel_sdk_disabled or self.otel_traces_exporter == "none":
            return None
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        if self.otel_exporter_otlp_endpoint:
            return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        return None

    @property
    def production_cautions(self) -> list[str]:
        """What a production start accepts but an operator should look at, one line each."""
        if not self.is_production:
            return []
        cautions = []
        if "*" in self.trusted_hosts:
            cautions.append(
                "TRUSTED_HOSTS is `*`: any Host header is accepted; list the names "
                "the API is served under"
            )
        if not self.redis_url:
            cautions.append(
                "REDIS_URL is unset: each process counts rate limits and login lockouts "
                "on its own, so every replica adds a full limit"
            )
        return cautions

    @model_validator(mode="after")
    def _refuse_credentialed_wildcard(self) -> Self:
        # Browsers refuse `*` with credentials; reflecting any origin instead
        # would hand every site the user's session.
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS cannot contain `*` when CORS_ALLOW_CREDENTIALS is on")
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        if not self.is_production:
            return self
        secret = self.secret_key.get_secret_value()
        if secret == DEFAULT_SECRET_KEY or len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_BYTES} "
                "bytes in production"
            )
        if self.debug:
            raise ValueError("DEBUG must be off in production")
        if self.is_sqlite:
            raise ValueError("DATABASE_URL must point at PostgreSQL in production, not SQLite")
        if "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS must list the allowed origins in production, not `*`")
        return self
