"""Alert webhooks: the hooks file, and finding the hook of a presented secret path in constant time.

An alerting platform that cannot set headers (TradingView, ChartInk, Amibroker) posts to a secret
path, ``/v1/hooks/<token>``; the token is the credential. A token looks like ``wh_<id>_<secret>``
(256 random bits). The hooks file (default ``<home>/Jsons/hooks.json``, JSON, mode 0600) keeps, per
hook, its public id, name, strategy and an HMAC-SHA256 of the token under a random secret of the file,
never the token, which ``ordergate hooks create`` prints once, as the key file does
(:mod:`ordergate.security.keys`; the hashing, saving and watching are shared:
:mod:`ordergate.security.secrets_file`).

A running gateway holds the active hooks in memory (:class:`HookRing`), so a hook request reads no
file; it re-reads the file when it changed (looked at every half second, and at once for a token it does
not know), so a hook created with the CLI answers its first alert and a revoked one is refused within a
second. A file that became unusable is logged once per
change and the hooks loaded before stay in force; a missing file is no hooks. A hook acts as a
producer limited to its strategy, named by the hook's name (the actor the audit shows).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ordergate.domain.names import name_problem
from ordergate.domain.registry import json_path, json_type
from ordergate.errors import StartupError
from ordergate.security.keys import Principal, Role
from ordergate.security.secrets_file import (
    TokenRing,
    read_document,
    save_private,
    token_digest,
)

log = logging.getLogger(__name__)

HOOK_PREFIX = "wh"
FILE_VERSION = 1
HOOKS_PATH = "/v1/hooks/"
"""The path prefix of every hook: ``/v1/hooks/<token>``."""


def default_hooks_file(home: Path) -> Path:
    """Where a gateway of ``home`` and the ``hooks`` commands look for the hooks file."""
    return home / "Jsons" / "hooks.json"


class HookFileError(StartupError):
    """The hooks file cannot be used; the message names the file and the place of the problem."""


@dataclass(frozen=True, slots=True)
class Hook:
    """One hook as the file keeps it: everything but its token."""

    hook_id: str
    name: str
    strategy: str
    digest: str
    """Hex HMAC-SHA256 of the whole token under the file's secret."""
    created_at: str
    revoked_at: str | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        """The rights a request through this hook has: a producer of its one strategy, named as the hook."""
        return Principal(f"hook-{self.hook_id}", self.name, Role.PRODUCER, frozenset({self.strategy}), None)

    def to_document(self) -> dict[str, Any]:
        return {
            "id": self.hook_id,
            "name": self.name,
            "strategy": self.strategy,
            "hash": self.digest,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }

    def listed(self) -> dict[str, Any]:
        """What ``hooks list`` shows: everything but the hash."""
        document = self.to_document()
        del document["hash"]
        return document


def path_of(token: str) -> str:
    return f"{HOOKS_PATH}{token}"


@dataclass(frozen=True, slots=True)
class HookFile:
    path: Path
    secret: bytes
    hooks: tuple[Hook, ...]

    @classmethod
    def new(cls, path: Path) -> HookFile:
        return cls(path, secrets.token_bytes(32), ())

    @classmethod
    def load(cls, path: Path) -> HookFile:
        """Read and check the hooks file, or raise :class:`HookFileError` naming the file and the JSON path."""
        missing = "create a hook with 'ordergate hooks create --strategy S'"
        return _parse(path, read_document(path, "hooks file", missing, HookFileError))

    @classmethod
    def load_or_new(cls, path: Path) -> HookFile:
        return cls.load(path) if path.exists() else cls.new(path)

    def create(self, strategy: str, *, name: str | None = None, now: str) -> tuple[HookFile, Hook, str]:
        """A new hook: the file that holds it (not yet saved), its entry, and its token (shown once).

        Raises ``ValueError`` for a strategy or name that is not a valid name, or a name an active hook has.
        """
        for what, value in (("strategy", strategy), ("name", name)):
            problem = name_problem(value) if value is not None else None
            if problem is not None:
                raise ValueError(f"{what} {problem}")
        taken = {hook.hook_id for hook in self.hooks}
        hook_id = secrets.token_hex(6)
        while hook_id in taken:  # pragma: no cover - 48 random bits
            hook_id = secrets.token_hex(6)
        chosen = name or f"hook-{hook_id}"
        if any(hook.is_active and hook.name == chosen for hook in self.hooks):
            raise ValueError(f"an active hook is named {chosen!r} already; choose another --name")
        token = f"{HOOK_PREFIX}_{hook_id}_{secrets.token_urlsafe(32)}"
        hook = Hook(hook_id, chosen, strategy, token_digest(self.secret, token).hex(), now)
        return replace(self, hooks=(*self.hooks, hook)), hook, token

    def revoke(self, which: str, *, now: str) -> tuple[HookFile, Hook]:
        """Revoke the hook whose id or name is ``which`` (it stays in the file, marked revoked)."""
        matching = [h for h in self.hooks if h.hook_id == which] or [h for h in self.hooks if h.name == which]
        if len(matching) > 1:  # one active hook at most has a name; revoked ones may repeat it
            matching = [h for h in matching if h.is_active] or matching
        if not matching:
            raise ValueError(f"no hook has the id or name {which!r}; 'ordergate hooks list' shows them")
        if len(matching) > 1:
            ids = ", ".join(h.hook_id for h in matching)
            raise ValueError(f"{len(matching)} revoked hooks are named {which!r} ({ids}); name one by its id")
        target = matching[0]
        if not target.is_active:
            raise ValueError(f"hook {target.hook_id} ({target.name}) was already revoked at {target.revoked_at}")
        revoked = replace(target, revoked_at=now)
        return replace(self, hooks=tuple(revoked if h is target else h for h in self.hooks)), revoked

    def save(self) -> None:
        """Write the file atomically, readable by its owner only."""
        save_private(
            self.path,
            {"version": FILE_VERSION, "secret": self.secret.hex(), "hooks": [h.to_document() for h in self.hooks]},
        )


_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_HOOK_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


def _parse(path: Path, document: object) -> HookFile:
    """Check every entry completely, so that nothing built from the file afterwards can fail on it."""

    def problem(where: str, what: str) -> HookFileError:
        return HookFileError(f"{path}: {where}: {what}")

    if not isinstance(document, dict):
        raise problem("$", f"must be an object, not {json_type(document)}")
    if type(document.get("version")) is not int or document["version"] != FILE_VERSION:
        raise problem(json_path("version"), f"must be {FILE_VERSION}")
    secret = document.get("secret")
    try:
        secret_bytes = bytes.fromhex(secret) if isinstance(secret, str) else b""
    except ValueError:
        secret_bytes = b""
    if len(secret_bytes) < 16:
        raise problem(json_path("secret"), "must be a hex string of at least 16 bytes")
    entries = document.get("hooks")
    if not isinstance(entries, list):
        raise problem(json_path("hooks"), f"must be a list, not {json_type(entries)}")
    hooks: list[Hook] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise problem(json_path("hooks", index), f"must be an object, not {json_type(entry)}")

        def text(field: str, *, nullable: bool = False, entry: dict[str, Any] = entry, index: int = index) -> Any:
            value = entry.get(field)
            if value is None and nullable:
                return None
            if not isinstance(value, str):
                raise problem(json_path("hooks", index, field), f"must be a string, not {json_type(value)}")
            return value

        hook_id = text("id")
        if _HOOK_ID.fullmatch(hook_id) is None:
            where = json_path("hooks", index, "id")
            raise problem(where, f"must be 1 to 64 ASCII letters, digits or '-', not {hook_id!r}")
        if any(h.hook_id == hook_id for h in hooks):
            raise problem(json_path("hooks", index, "id"), f"{hook_id!r} repeats the id of an earlier hook")
        name, strategy = text("name"), text("strategy")
        for field, value in (("name", name), ("strategy", strategy)):
            if (wrong := name_problem(value)) is not None:
                raise problem(json_path("hooks", index, field), f"{field} {wrong}")
        digest = text("hash")
        if _HEX_DIGEST.fullmatch(digest) is None:
            raise problem(json_path("hooks", index, "hash"), "must be 64 hex characters (HMAC-SHA256)")
        hooks.append(Hook(hook_id, name, strategy, digest, text("created_at"), text("revoked_at", nullable=True)))
    return HookFile(path, secret_bytes, tuple(hooks))


class HookRing(TokenRing[Hook]):
    """The active hooks of a hooks file, as a running gateway finds them on every hook request."""

    prefix, what, log = HOOK_PREFIX, "hooks file", log

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Load the file if it exists (raises :class:`HookFileError` for an unusable one: a start-up error)."""
        self.path = path
        super().__init__(path, *self._read(), clock=clock)

    def _read(self) -> tuple[bytes, dict[str, tuple[bytes, Hook]]]:
        hooks = HookFile.load(self.path) if self.path.exists() else HookFile.new(self.path)
        return hooks.secret, {h.hook_id: (bytes.fromhex(h.digest), h) for h in hooks.hooks if h.is_active}

    @property
    def active_hooks(self) -> int:
        return len(self._by_id)

    def find(self, token: str) -> Hook | None:
        """The active hook whose token is ``token``, or ``None`` (unknown, revoked or malformed alike)."""
        return self._find(token)
