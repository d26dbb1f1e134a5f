"""Every setting of the service, read from the environment (``LEADERBOARD_*``) or the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
#: Shortest admin token accepted: a short bearer token can be guessed over the network.
MIN_ADMIN_TOKEN_LENGTH = 16


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "leaderboard-api"


class BasicUserSetting(BaseModel):
    """One user of the ``basic_users`` setting."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    password: SecretStr = Field(
        description="A pbkdf2_sha256$... hash (leaderboard_api.auth.hash_password) or the "
        "plain password."
    )
    scopes: list[str] = Field(default_factory=list, description="Scopes granted.")


class Settings(BaseSettings):
    """Settings; each field is documented in the README's settings table (a test checks)."""

    model_config = SettingsConfigDict(
        env_prefix="LEADERBOARD_",
        extra="ignore",
        frozen=True,
        # A refused admin token must not be echoed into logs by the validation error.
        hide_input_in_errors=True,
    )

    data: str | None = Field(
        default=None,
        description="Dataset: a directory, hf://datasets/ORG/NAME[@REV], or unset for the sample.",
    )
    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to bind.")
    cache_dir: Path | None = Field(
        default_factory=_default_cache_dir,
        description="Disk cache of normalized datasets keyed by snapshot id; empty disables.",
    )
    hf_cache_dir: Path | None = Field(
        default=None, description="Hugging Face cache folder (default: huggingface_hub's own)."
    )
    cache_control: str = Field(
        default="public, max-age=60, stale-while-revalidate=600",
        description="Cache-Control header of /v1 responses.",
    )
    cors_origins: CommaList = Field(
        default_factory=list, description="Comma-separated allowed CORS origins (`*` for any)."
    )
    lru_max_entries: int = Field(
        default=1024, ge=1, description="Most parameterized responses kept in memory."
    )
    lru_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Most bytes (all encodings) of parameterized responses kept in memory.",
    )
    payload_store_bytes: int = Field(
        default=2 * 1024**3,
        ge=0,
        description="Most bytes of built payloads kept on disk under the cache directory "
        "(0 disables the store).",
    )
    warmup_concurrency: int = Field(
        default=2, ge=1, le=64, description="Payload builds running at once during warmup."
    )
    build_concurrency: int = Field(
        default=2, ge=1, le=16, description="Payload builds at once when idle (one under load)."
    )
    build_queue: int = Field(
        default=16,
        ge=1,
        description="Cold builds a client waits for that may queue; the next gets 503 with "
        "Retry-After.",
    )
    build_max_wait_seconds: float = Field(
        default=30.0, ge=0, description="Longest estimated wait a cold request is queued for."
    )
    build_busy_rate: float = Field(
        default=200.0, ge=0, description="Requests per second from which builds are paced."
    )
    build_busy_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Share of one core builds may use while requests flow (under a CPU quota "
        "of q cores, about 0.1 x q).",
    )
    warmup: bool = Field(default=True, description="Preload every unparameterized route.")
    watch_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Seconds between checks for a new dataset version (default 300 for hub, "
        "off for directories); 0 turns watching off.",
    )
    dataset_pull: bool = Field(
        default=True,
        description="Fetch and fast-forward a git dataset with an upstream before each reload "
        "check (never a merge or rebase; a failed fetch keeps serving the local HEAD).",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for POST /admin/reload (at least 16 characters, no "
        "surrounding spaces); unset or empty disables it.",
    )
    state: str | None = Field(
        default=None,
        description="Operational state (submissions, votes, API keys, audit): a SQLAlchemy "
        "URL, e.g. postgresql+psycopg://... for several replicas; unset: a SQLite file under "
        "the user's data directory; `none` turns the write side off.",
    )
    submission_allow: CommaList = Field(
        default_factory=list,
        description="fnmatch patterns (comma-separated, e.g. `myorg/*`) of models that may be "
        "submitted besides the served dataset's models.",
    )
    submission_check_hub: bool = Field(
        default=False,
        description="Also accept submissions of models that exist on the Hub (model_info "
        "against hf_auth_endpoint).",
    )
    ingest_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="Largest POST /v1/results body (parquet or JSON); larger ones get 413.",
    )
    ingest_git_author_name: str = Field(
        default="leaderboard-api",
        min_length=1,
        description="Author (and committer) name of the commits that ingest results.",
    )
    ingest_git_author_email: str = Field(
        default="leaderboard-api@localhost",
        min_length=1,
        description="Author (and committer) email of the commits that ingest results.",
    )
    ingest_push_retries: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Times an ingest retries a rejected git push (after fetching the remote).",
    )
    read_auth: bool = Field(
        default=False,
        description="Every /v1 and compatibility read needs credentials with the read scope; "
        "answers are then Cache-Control: private with Vary: Authorization.",
    )
    auth_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Seconds one credential's verification (identity or refusal) is reused; a "
        "revoked API key keeps working that long.",
    )
    hf_auth: bool = Field(
        default=False,
        description="Accept Hugging Face tokens (Bearer hf_...), verified by the Hub's whoami.",
    )
    hf_auth_endpoint: str = Field(
        default="https://huggingface.co",
        description="Hub whose /api/whoami-v2 verifies Hugging Face tokens.",
    )
    hf_auth_cache_seconds: float = Field(
        default=300.0, ge=0, description="Seconds a Hub whoami answer is reused."
    )
    hf_auth_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time limit of one whoami call (then 503)."
    )
    hf_auth_scopes: CommaList = Field(
        default_factory=lambda: ["submit", "vote"],
        description="Comma-separated scopes of every verified Hugging Face user.",
    )
    basic_users: dict[str, BasicUserSetting] = Field(
        default_factory=dict,
        description='JSON {"user": {"password": "...", "scopes": ["submit"]}}: HTTP Basic '
        "users (the LLM Bench API's clients).",
    )
    rate_limit_storage: SecretStr = Field(
        default=SecretStr("memory://"),
        description="Rate-limit counters: memory:// (one process) or redis://HOST:PORT/DB "
        "shared by replicas.",
    )
    rate_limit_strategy: Literal["moving-window", "fixed-window", "sliding-window-counter"] = Field(
        default="moving-window", description="How the limits library counts."
    )
    rate_limit_submissions: str = Field(
        default="10/day", description="Submissions per identity (empty: unlimited)."
    )
    rate_limit_votes: str = Field(
        default="100/hour", description="Votes per identity (empty: unlimited)."
    )
    rate_limit_cold_builds: str = Field(
        default="30/minute",
        description="Parameterized reads built on demand, per client address (empty: unlimited).",
    )
    trusted_proxies: CommaList = Field(
        default_factory=list,
        description="Comma-separated proxy addresses or networks whose X-Forwarded-For is "
        "believed (`*`: any); empty: the peer address counts.",
    )
    icon_allowed_hosts: CommaList = Field(
        default_factory=lambda: [
            "github.com",
            "raw.githubusercontent.com",
            "huggingface.co",
            "cdn-uploads.huggingface.co",
        ],
        description="Comma-separated hosts /v1/icon/{name} may fetch from.",
    )
    icon_max_bytes: int = Field(default=512 * 1024, ge=1, description="Largest icon proxied.")
    icon_timeout_seconds: float = Field(default=5.0, gt=0, description="Icon fetch time limit.")
    log_format: Literal["text", "json"] = Field(default="text", description="Log line format.")
    log_level: str = Field(default="INFO", description="Log level.")
    access_log: bool = Field(
        default=False, description="Log every request, including fast-path ones."
    )
    metrics: bool = Field(default=True, description="Serve /metrics and count requests.")

    @field_validator(
        "cors_origins",
        "icon_allowed_hosts",
        "hf_auth_scopes",
        "trusted_proxies",
        "submission_allow",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cache_dir", "hf_cache_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("admin_token", mode="after")
    @classmethod
    def _token_rules(cls, value: SecretStr | None) -> SecretStr | None:
        # Empty means "not set" (an env var present but blank); anything else must be a
        # token a client can send and an attacker cannot guess.
        if value is None or value.get_secret_value() == "":
            return None
        token = value.get_secret_value()
        if token != token.strip():
            msg = "admin_token must not start or end with whitespace"
            raise ValueError(msg)
        if len(token) < MIN_ADMIN_TOKEN_LENGTH:
            msg = f"admin_token must be at least {MIN_ADMIN_TOKEN_LENGTH} characters"
            raise ValueError(msg)
        return value

    def state_url(self) -> str | None:
        """The operational store's URL (None: the write side is off)."""
        if self.state is not None and self.state.strip().lower() in ("", "none", "off"):
            return None
        from leaderboard_api.operational.db import resolve_url

        return resolve_url(self.state)

    def effective_watch_seconds(self) -> float | None:
        if self.watch_seconds is not None:
            return self.watch_seconds or None
        return 300.0 if (self.data or "").startswith("hf://") else None
