"""Settings of a gateway process (pydantic-settings), built once by the entry point.

Every setting can come from the command line, from an ``ORDERGATE_*`` environment variable, or
from its default; nothing reads the environment at import time.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ordergate.domain.model import Scope
from ordergate.security.origins import checked_origin
from ordergate.store.base import Durability


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERGATE_", extra="ignore")

    home: Path = Field(default_factory=Path.cwd, description="Folder holding Jsons/, Logs/ and data/.")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    fix_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the FIX 4.4 acceptor on ``host`` (SPEC section 11); ``None``: no FIX acceptor."""
    scope: Scope = Scope.ACCOUNT
    db: str | None = Field(default=None, description="Database URL; none means SQLite under <home>/data/.")
    durability: Durability = Durability.FULL
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest request body accepted; larger bodies get 413."""
    max_batch_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    fast_path: bool = True
    """Serve order entry from raw ASGI (same code and answers as the FastAPI routes, faster)."""
    log_format: LogFormat = LogFormat.TEXT
    event_buffer: int = Field(default=10_000, ge=1)
    """Orders an event-stream client may fall behind by before it is dropped with a ``resync`` event."""
    max_event_clients: int = Field(default=100, ge=1)
    """Event streams open at once; one more is refused with 503 and ``Retry-After``."""
    event_heartbeat: float = Field(default=15.0, gt=0)
    """Seconds of silence after which an event stream sends a keep-alive comment."""
    access_log: bool = False
    auth: Path | None = None
    """Key file of the API keys (``ordergate keys create``); ``None``: no authentication (loopback use)."""
    rate_limit: float | None = Field(default=None, gt=0)
    """Requests a second each API key (or client address, with auth off) may make; ``None``: no limit."""
    rate_burst: int | None = Field(default=None, ge=1)
    """Requests a caller may make at once above its rate; default: one second's worth."""
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    """Request line and header fields of one request, in bytes; more gets 431."""
    max_headers: int = Field(default=100, ge=8, le=10_000)
    """Header fields of one request; more gets 431."""
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    """Seconds from connecting (or from the previous response) to a request's complete headers; then 408."""
    body_timeout: float = Field(default=10.0, gt=0, le=3600)
    """Seconds from a request's headers to its complete body; then 408."""
    max_connections: int | None = Field(default=None, ge=1)
    """Open connections before new ones are refused (503); ``None``: the descriptor limit minus a quarter."""
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Web origins besides the gateway's own whose pages may send state-changing requests (browsers' ``Origin``).

    ``ORDERGATE_ALLOWED_ORIGINS`` takes them separated by commas or spaces (or as a JSON list).
    """

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            return orjson.loads(text) if text.startswith("[") else text.replace(",", " ").split()
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _canonical_origins(cls, origins: list[str]) -> list[str]:
        return list(dict.fromkeys(checked_origin(origin) for origin in origins))

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    @field_validator("auth")
    @classmethod
    def _absolute_auth(cls, auth: Path | None) -> Path | None:
        return auth.expanduser().resolve() if auth is not None else None

    @property
    def profile_path(self) -> Path:
        return self.home / "Jsons" / "user_profile.json"

    @property
    def catalogue_path(self) -> Path:
        return self.home / "Jsons" / "raw_details.json"

    @property
    def logs_dir(self) -> Path:
        return self.home / "Logs"

    @property
    def default_key_file(self) -> Path:
        """Where ``ordergate keys`` keeps keys when no ``--file`` (or ``ORDERGATE_AUTH``) says otherwise."""
        return self.auth if self.auth is not None else self.home / "data" / "api_keys.json"

    @property
    def sqlite_path(self) -> Path:
        return self.home / "data" / "ordergate.sqlite3"
