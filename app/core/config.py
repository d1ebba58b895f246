"""The one place where configuration is read.

`Settings()` reads the environment (and `.env`) once; the object is then passed
down explicitly. Nothing else in the code base looks at `os.environ`.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from cryptography.fernet import Fernet
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
# Several keys in one setting: commas, or one a line in a secret file.
SecretList = Annotated[list[SecretStr], NoDecode]
# Settings that are or carry secrets (the URLs hold passwords). Each may
# instead be read from the file named by `<NAME>_FILE`, or from a file called
# `<NAME>` in SECRETS_DIR (Docker and Kubernetes secrets), so the value never
# has to sit in the environment.
SECRET_SETTINGS = (
    "database_url",
    "redis_url",
    "secret_key",
    "secret_key_previous",
    "data_encryption_keys",
    "smtp_password",
    "metrics_token",
    "first_admin_password",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # A rejected value must not be echoed into the error: it may be a secret.
        hide_input_in_errors=True,
    )

    # A directory of secret files named after the settings (`SECRET_KEY`,
    # `SMTP_PASSWORD`, ...), as Docker mounts them under /run/secrets.
    secrets_dir: Path | None = None

    app_env: Literal["development", "test", "production"] = "development"
    debug: bool = False
    open_registration: bool = True

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    # Seconds an idle client connection stays open. Longer than the idle timeout
    # of the load balancer in front (AWS ALB 60 s, nginx's upstream keepalive
    # 60 s): the balancer must be the one to close an idle connection, or it
    # may send a request down one the server is closing at that very moment.
    keepalive_timeout_seconds: int = Field(default=75, ge=1)
    # From SIGTERM, readiness answers 503 for this long while requests are still
    # served, so load balancers stop sending new ones before the listener closes.
    # Unset: 10 s in production; 0 in development and test, so Ctrl-C stops at once.
    shutdown_drain_seconds: float | None = Field(default=None, ge=0)
    # Then the listener closes and requests in flight get this long to finish
    # before they are cancelled.
    shutdown_timeout_seconds: float = Field(default=30.0, gt=0)

    database_url: str = DEFAULT_DATABASE_URL
    database_url_file: Path | None = None
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)
    # Off: a ping is three round trips (BEGIN, SELECT, ROLLBACK) before every
    # checkout, and a dead connection is replaced without it (app/db/engine.py).
    db_pool_pre_ping: bool = False
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_echo: bool = False
    # PostgreSQL cancels a statement running longer (answered 503). Below
    # REQUEST_TIMEOUT_SECONDS with room for a full pool wait, so a hung
    # statement is ended on the server, where it holds locks and a backend,
    # instead of being abandoned by the request timeout. 0: the server's own.
    db_statement_timeout_seconds: float = Field(default=10.0, ge=0)
    # PostgreSQL is reached through PgBouncer in transaction pooling, where
    # consecutive transactions of one connection may run on different server
    # connections: statements are prepared unnamed and never cached, and the
    # statement timeout is set in each transaction instead of at connect
    # (PgBouncer refuses it as a startup parameter).
    db_pgbouncer: bool = False

    # Signs access tokens. Tokens name their key by `kid`, so after a rotation
    # the keys listed in SECRET_KEY_PREVIOUS still verify (never sign) tokens
    # issued before it, until those expire.
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    secret_key_file: Path | None = None
    secret_key_previous: SecretList = Field(default_factory=list)
    secret_key_previous_file: Path | None = None
    # Fernet keys for data encrypted at rest, newest first: the newest
    # encrypts, any listed decrypts. Independent of SECRET_KEY.
    data_encryption_keys: SecretList = Field(default_factory=list)
    data_encryption_keys_file: Path | None = None
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
    smtp_password_file: Path | None = None
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # Where the reset email points; `{token}` is replaced. Unset: the token alone.
    password_reset_url: str | None = None

    password_hash_memory_kib: int = Field(default=19_456, ge=19_456)
    password_hash_time_cost: int = Field(default=2, ge=2)
    password_hash_parallelism: int = Field(default=1, ge=1)
    password_hash_concurrency: int = Field(default=2, ge=1)
    # Hashes that may wait for a free hashing thread; beyond them a request
    # gets 503, so a login storm cannot grow memory and latency without end.
    password_hash_queue_limit: int = Field(default=32, ge=0)

    idempotency_ttl_seconds: int = Field(default=86_400, ge=60)

    # Retention (app/retention/): rows past their use are deleted this many
    # rows per transaction, so a large backlog never holds a table for long.
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # Days an ended login session (expired, logged out, revoked) and its
    # refresh tokens are kept after the end, never before its own expiry.
    login_session_retention_days: int = Field(default=7, ge=0)
    # Days a password-reset token is kept after it was used or expired.
    password_reset_retention_days: int = Field(default=7, ge=0)
    # Days audit events are kept; 0 (the default): forever. Deleting them
    # deletes evidence: see docs/operations.md before setting it.
    audit_retention_days: int = Field(default=0, ge=0)
    health_check_timeout_seconds: float = Field(default=2.0, gt=0)

    redis_url: str | None = None
    redis_url_file: Path | None = None
    redis_timeout_seconds: float = Field(default=1.0, gt=0)

    # Background jobs (docs/jobs.md). Unset: the API process runs them itself
    # when there is no REDIS_URL, and leaves them to `python -m app worker` when there is.
    jobs_in_process: bool | None = None
    jobs_poll_seconds: float = Field(default=1.0, gt=0)
    jobs_batch_size: int = Field(default=100, ge=1)
    jobs_concurrency: int = Field(default=4, ge=1)
    jobs_timeout_seconds: float = Field(default=60.0, gt=0)
    # Attempts before a job is dead; between them the wait doubles from the base, up to the cap.
    jobs_max_attempts: int = Field(default=8, ge=1)
    jobs_retry_base_seconds: float = Field(default=10.0, gt=0)
    jobs_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # A job queued but not started by then is queued again: a Redis that lost
    # its queue (restarted, flushed) loses no job, it only delays it.
    jobs_requeue_after_seconds: float = Field(default=120.0, gt=0)
    # How long finished jobs stay in the outbox, to look at, before the purge.
    jobs_keep_finished_seconds: int = Field(default=7 * 86_400, ge=0)
    # The worker's own port: /health/live, /health/ready and /metrics.
    worker_host: str = "127.0.0.1"
    worker_port: int = Field(default=8001, ge=1, le=65535)
    # Liveness fails when the worker's loop has not beaten for this long.
    worker_heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)

    rate_limit_enabled: bool = True
    rate_limit_default: str = "600/minute"
    rate_limit_login: str = "30/minute"
    rate_limit_register: str = "20/minute"
    rate_limit_refresh: str = "60/minute"
    rate_limit_password_reset: str = "5/minute"
    login_lockout_account: str = "5/15 minutes"
    login_lockout_client: str = "50/15 minutes"
    rate_limit_strategy: RateLimitStrategy = "sliding-window-counter"
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
    metrics_token_file: Path | None = None
    metrics_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    # Set: metrics are shared by every worker process through files here
    # (prometheus_client's multiprocess mode). Cleared by `serve` at start-up.
    prometheus_multiproc_dir: Path | None = None

    # Tracing is on when an OTLP endpoint is set: the one thing the app decides.
    # The OpenTelemetry SDK reads every other OTEL_* variable (sampler, service
    # name, resource attributes, exporter headers and timeout, OTEL_SDK_DISABLED)
    # from the process environment itself.
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None

    first_admin_email: str | None = None
    first_admin_password: SecretStr | None = None
    first_admin_password_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        secrets_dir = data.get("secrets_dir")
        for name in SECRET_SETTINGS:
            path = _secret_file_of(name, data.get(f"{name}_file"), secrets_dir)
            if path is None:
                continue
            if data.get(name) not in (None, ""):
                raise ValueError(
                    f"{name.upper()} is set both directly and as a file ({path}); "
                    "set only one of them"
                )
            data[name] = read_secret_file(name, path)
        return data

    @field_validator("secret_key_previous", "data_encryption_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in re.split(r"[,\s]+", value) if part]
        return value

    @field_validator("data_encryption_keys")
    @classmethod
    def _fernet_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for position, key in enumerate(value, start=1):
            try:
                Fernet(key.get_secret_value())
            except ValueError:
                raise ValueError(
                    f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "generate one with `python -m app new-encryption-key`"
                ) from None
        return value

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
    def runs_jobs_in_process(self) -> bool:
        """The API process works the outbox itself: by default, when there is no queue."""
        if self.jobs_in_process is not None:
            return self.jobs_in_process
        return self.redis_url is None

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
        if self.mail_backend != "smtp":
            cautions.append(
                f"MAIL_BACKEND is `{self.mail_backend}`: password-reset mail is dropped, "
                "never delivered; set MAIL_BACKEND=smtp and the SMTP_* settings"
            )
        if self.log_level == "DEBUG":
            cautions.append(
                "LOG_LEVEL is DEBUG: every library's debug lines are written, many per "
                "request; use INFO"
            )
        if self.db_echo:
            cautions.append("DB_ECHO is on: every SQL statement is logged; turn it off")
        if self.shutdown_timeout_seconds < self.request_timeout_seconds:
            cautions.append(
                "SHUTDOWN_TIMEOUT_SECONDS is shorter than REQUEST_TIMEOUT_SECONDS: at "
                "shutdown a request still running is cut off before the app's own 504"
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
        if looks_made_up(secret):
            raise ValueError(
                f"SECRET_KEY must be random, not a pattern: it has fewer than "
                f"{MIN_SECRET_DISTINCT_CHARACTERS} distinct characters or repeats one "
                "shorter string; generate one with "
                '`python3 -c "import secrets; print(secrets.token_urlsafe(48))"`'
            )
        for previous in self.secret_key_previous:
            key = previous.get_secret_value()
            if len(key.encode()) < MIN_SECRET_BYTES or looks_made_up(key):
                raise ValueError(
                    "SECRET_KEY_PREVIOUS holds a key that would be refused as SECRET_KEY "
                    "(short, default or patterned); a token it verifies could be forged"
                )
        if self.debug:
            raise ValueError("DEBUG must be off in production")
        if self.is_sqlite:
            raise ValueError("DATABASE_URL must point at PostgreSQL in production, not SQLite")
        if "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS must list the allowed origins in production, not `*`")
        return self

    @model_validator(mode="after")
    def _refuse_open_networks_in_production(self) -> Self:
        if not self.is_production:
            return self
        for name, networks, consequence in [
            ("TRUSTED_PROXIES", self.trusted_proxies, "any client could name its own address"),
            (
                "METRICS_ALLOWED_NETWORKS",
                self.metrics_allowed_networks,
                "anyone could read /metrics",
            ),
        ]:
            for network in networks:
                if covers_every_address(network):
                    raise ValueError(
                        f"{name} must not contain {network} in production: it covers every "
                        f"address, so {consequence}; list the networks themselves"
                    )
        return self


# A production SECRET_KEY must have at least this many distinct characters
# (a random hex key of 32 characters has about 14, a URL-safe one about 25).
MIN_SECRET_DISTINCT_CHARACTERS = 8
# Where IPv6 writes IPv4 addresses (::ffff:a.b.c.d); clients are matched by
# their IPv4 form, but a network holding all of these still means "everyone".
_IPV4_MAPPED = IPv6Network("::ffff:0:0/96")


def _secret_file_of(name: str, file_setting: object, secrets_dir: object) -> Path | None:
    if file_setting not in (None, ""):
        return Path(str(file_setting))
    if secrets_dir in (None, ""):
        return None
    directory = Path(str(secrets_dir))
    for candidate in (directory / name.upper(), directory / name):
        if candidate.is_file():
            return candidate
    return None


def read_secret_file(name: str, path: Path) -> str:
    """A secret file's content without the trailing newline editors and `echo` add."""
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"{name.upper()}_FILE: cannot read {path}: {reason}") from None
    value = content.rstrip("\r\n")
    if not value:
        raise ValueError(f"{name.upper()}_FILE: {path} is empty")
    return value


def looks_made_up(secret: str) -> bool:
    """Typed or patterned rather than generated: too few distinct characters, or a repetition.

    Catches placeholders such as `xxxx…`, `changeme` repeated or `0123…` twice;
    it cannot tell a random key from a clever pattern, so keys still come from
    a generator.
    """
    # A string is a repetition of a shorter one exactly when it occurs inside
    # itself doubled, other than at the two ends.
    repeated = secret in (secret + secret)[1:-1]
    return repeated or len(set(secret)) < MIN_SECRET_DISTINCT_CHARACTERS


def covers_every_address(network: IPv4Network | IPv6Network) -> bool:
    """0.0.0.0/0, ::/0, or an IPv6 network holding every IPv4-mapped address."""
    if network.prefixlen == 0:
        return True
    return isinstance(network, IPv6Network) and _IPV4_MAPPED.subnet_of(network)
