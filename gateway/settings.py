"""Every setting in one frozen object, read from `GATEWAY_*` environment variables and,
below them, from the TOML file `GATEWAY_CONFIG` names (`fno-gateway --config FILE`).

`fno-gateway settings` prints them all, with their defaults and what they do.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG = "GATEWAY_CONFIG"  # the environment variable naming the TOML file


class Settings(BaseSettings):
    """The gateway's configuration. Each field is also `GATEWAY_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags, then the environment, then the TOML file, then the defaults."""
        config = os.environ.get(CONFIG)
        if not config:
            return init_settings, env_settings
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, Path(config))

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, description="Port to listen on.")
    data_dir: Path = Field(
        Path("fno-gateway-data"), description="Folder for the embedded stores and the token secret."
    )
    fno_url: str | None = Field(
        None,
        description="F&O store URL: sqlite:///…, postgresql://…, or an F&O environment's "
        "OData root https://…/data/?tenant=…&client_id=…&client_secret=env:NAME; "
        "default: SQLite in the data folder.",
    )
    control_url: str | None = Field(
        None, description="Control store URL; default: SQLite in the data folder."
    )
    demo: bool = Field(True, description="Create the demo F&O store when the F&O store is empty.")
    demo_scale: float = Field(1.0, description="Size of that demo store (1 = 1,000 customers).")
    jwt_secret: SecretStr | None = Field(
        None, description="HS256 secret for tokens; default: generated into the data folder."
    )
    jwt_public_key: str | None = Field(
        None, description="PEM public key: also accept RS256 tokens signed by its private key."
    )
    anonymous_reads: bool = Field(
        False, description="Let callers without a token read F&O data (never change anything)."
    )
    dataverse_location: str | None = Field(
        None,
        description="Where setup creates Dataverse stores: a folder (SQLite files) or a "
        "PostgreSQL server URL (a database each); default: the control store's server, or "
        "the data folder.",
    )
    job_lease_seconds: float = Field(
        30.0,
        gt=0,
        description="A job or lease (an endpoint's deliveries, change tracking) whose "
        "replica stops renewing it is taken over by another after this many seconds.",
    )
    poll_seconds: float = Field(
        1.0, gt=0, description="How often jobs and streams look for work from other replicas."
    )
    job_tries: int = Field(
        5,
        ge=1,
        description="Failures in a row after which a dual-write job (initial sync, catch-up, "
        "live sync of changes made directly in a store) gives up and its map goes to Error.",
    )
    run_jobs: bool = Field(True, description="Run durable jobs (setup, add-ins) in this process.")
    migrate_on_start: bool = Field(
        True,
        description="Bring the control store to this release's schema on start; if false, "
        "a store at another revision stops the start (run `fno-gateway migrate`).",
    )
    track_seconds: float = Field(
        0.2,
        gt=0,
        description="How often dual-write looks for rows other clients wrote into a store.",
    )
    sync_batch: int = Field(10_000, ge=1, description="Rows an initial-sync batch copies.")
    queue_alert: int = Field(
        100_000,
        ge=1,
        description="Changes a paused dual-write map may queue before it raises an alert "
        "(the queue itself is bounded only by disk).",
    )
    sync_timeout: float = Field(
        120.0, gt=0, description="Seconds the other store has to take a dual-write change."
    )
    trusted_documents: Path | None = Field(
        None,
        description="A manifest of trusted documents (persisted queries) by SHA-256: GraphQL "
        "Codegen's {hash: text} or Apollo's persisted query manifest. Clients may then send "
        "documentId: 'sha256:<hash>' instead of the text.",
    )
    trusted_documents_only: bool = Field(
        False, description="Run only the documents in that manifest, refusing any other."
    )
    ws_max_subscriptions: int = Field(
        100, ge=1, description="Subscriptions one WebSocket connection may run at once."
    )
    ws_connections_per_caller: int = Field(
        20,
        ge=1,
        description="WebSocket connections one caller (token subject, or address when "
        "anonymous) may hold open at once, per replica.",
    )
    ws_compression: bool = Field(
        False,
        description="Compress WebSocket messages (permessage-deflate) when a client asks. "
        "Off: a stream to many listeners would compress the same events once per listener, "
        "which costs far more CPU than sending them.",
    )
    event_endpoints_per_event: int = Field(
        10, ge=1, description="Endpoints one business event may be activated for."
    )
    webhook_timeout: float = Field(
        10.0, gt=0, description="Seconds a webhook has to answer before the try counts as failed."
    )
    event_buffer: int = Field(
        10_000,
        ge=1,
        description="Events a businessEvents listener may have waiting before it is switched "
        "to reading the event log (nothing is lost; it is told).",
    )
    default_page_size: int = Field(
        100, ge=1, description="Page size when a connection gets neither first nor last."
    )
    max_page_size: int = Field(10_000, ge=1, description="Largest first/last a connection accepts.")
    max_depth: int = Field(12, ge=1, description="Deepest selection a query may have.")
    max_aliases: int = Field(50, ge=1, description="Most aliases a query may use.")
    max_tokens: int = Field(
        10_000, ge=100, description="Most tokens (names, punctuation, values) a document may have."
    )
    max_cost: int = Field(
        2_000_000,
        ge=1,
        description="Most objects a query may ask for: each list's page size (first/last, "
        "or the default) multiplied down the tree, summed over the query.",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted (413 past it)."
    )
    operation_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a query's reads may take before it is refused. Mutations run "
        "to their end: a write is all-or-nothing, never cut short.",
    )
    rate_limit: str | None = Field(
        None,
        description="Requests each caller (token, API key, or address when anonymous) may "
        "make, e.g. '600/minute' or '20/second;600/minute'; none by default. Counted per "
        "replica.",
    )
    pool_size: int = Field(
        20, ge=1, description="Connections kept open to each PostgreSQL store, per worker."
    )
    fast_reads: bool = Field(
        True, description="Answer entity reads with one statement whose JSON the store builds."
    )
    read_pool_size: int = Field(
        10,
        ge=1,
        description="Connections for those statements, per PostgreSQL store and worker. Each "
        "keeps a core of the database busy while it runs: beyond its cores, more only queue "
        "inside PostgreSQL.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the gateway (CORS), e.g. "
        "'[\"https://app.contoso.com\"]'; pages served from loopback are always allowed.",
    )
    workers: int = Field(1, ge=1, description="uvicorn worker processes.")
    shutdown_seconds: int = Field(
        30,
        gt=0,
        description="On SIGTERM, how long requests in flight have to finish (new ones are "
        "refused; WebSocket clients are closed with 1012, service restart, to reconnect "
        "with their last cursor; jobs finish their step and give their lease back).",
    )
    log_level: str = Field("info", description="Log level.")
    traces: bool = Field(
        False,
        description="Export OpenTelemetry traces over OTLP/HTTP (needs the `traces` extra); "
        "where to, and the service name, come from the standard OTEL_* variables.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text, or as one JSON object each (time, level, logger, "
        "message, request_id, correlation_id) for a log pipeline.",
    )

    @field_validator("rate_limit")
    @classmethod
    def _rates(cls, value: str | None) -> str | None:
        if value:
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(
                    f"{value!r} is not a rate like '600/minute' or '20/second;600/minute'"
                ) from exc
        return value

    def store_url(self, which: str) -> str:
        configured = self.fno_url if which == "fno" else self.control_url
        if configured:
            return configured
        return f"sqlite:///{(self.data_dir / f'{which}.db').resolve()}"

    def dataverse_home(self) -> str:
        if self.dataverse_location:
            return self.dataverse_location
        control = self.store_url("control")
        if control.startswith(("postgresql://", "postgres://")):
            return control
        return str((self.data_dir / "dataverse").resolve())

    @property
    def uses_data_dir(self) -> bool:
        return self.fno_url is None or self.control_url is None or self.jwt_secret is None

    def token_secret(self) -> str:
        """The configured secret, or one kept in the data folder (made on first use, mode 0600)."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = self.data_dir / "jwt-secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()


def describe_settings() -> str:
    """Every setting as `GATEWAY_<NAME>` (TOML key `<name>`), its default and its meaning."""
    lines = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = (
            "(none)"
            if default is None
            else repr(str(default) if isinstance(default, Path) else default)
        )
        lines.append(f"GATEWAY_{name.upper()}  (TOML: {name}, default {shown})")
        lines.append(f"    {field.description}")
    return "\n".join(lines)
