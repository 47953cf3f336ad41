"""API keys: the key file, the roles a key can have, and checking a presented key in constant time.

A key looks like ``og_<id>_<secret>``. The key file (``--auth KEYFILE``, JSON, written with mode
0600) keeps, per key, its public id, name, role, limits and an HMAC-SHA256 of the whole key under a
random secret of the file; never the key itself, which ``ordergate keys create`` prints once. Keys
hold 256 random bits, so a keyed fast hash is as safe as a slow one here and costs about a
microsecond per request: the fast path checks thousands of requests a second. A presented key is
found by its id and its HMAC compared with :func:`hmac.compare_digest`.

The hashing, the private atomic save and the watch for changes are shared with the hooks file
(:mod:`ordergate.security.secrets_file`). A running gateway re-reads the file when it changes
(checked at most once a second), so a key
created or revoked with the CLI takes effect without a restart; a file that became invalid is
refused with one logged error per change of the file, and the keys already loaded stay in force.
Every entry is checked completely when the file is read (a hash that is not hex, a name that is not
a name), so a bad file is a one-line :class:`KeyFileError` naming the file and the entry (exit 2 at
start-up), never a traceback at start-up or a 500 on the requests after a reload.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from ordergate.domain.names import name_problem
from ordergate.domain.registry import json_path, json_type
from ordergate.errors import StartupError
from ordergate.security.secrets_file import (
    TokenRing,
    read_document,
    save_private,
    token_digest,
    token_id_of,
)

log = logging.getLogger(__name__)

KEY_PREFIX = "og"
FILE_VERSION = 1


class Role(StrEnum):
    PRODUCER = "producer"
    """May send orders (and check them), optionally only for listed strategies."""
    VIEWER = "viewer"
    """May read, optionally only one user's positions, trades and order effects."""
    ADMIN = "admin"
    """Everything, including trading controls and profile reloads."""


class Principal(NamedTuple):
    """Who a request comes from: the rights of one valid key."""

    key_id: str
    name: str
    role: Role
    strategies: frozenset[str] | None
    """For a producer: the only strategies it may send orders for (``None``: any)."""
    user: str | None
    """For a viewer: the only user whose data it may see (``None``: everyone's)."""

    def may_order(self, strategy: str) -> bool:
        return self.role is Role.ADMIN or (
            self.role is Role.PRODUCER and (self.strategies is None or strategy in self.strategies)
        )


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key as the file keeps it: everything but the key."""

    key_id: str
    name: str
    role: Role
    strategies: tuple[str, ...] | None
    user: str | None
    digest: str
    """Hex HMAC-SHA256 of the whole key under the file's secret."""
    created_at: str
    revoked_at: str | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        strategies = frozenset(self.strategies) if self.strategies is not None else None
        return Principal(self.key_id, self.name, self.role, strategies, self.user)

    def to_document(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "name": self.name,
            "role": self.role.value,
            "strategies": list(self.strategies) if self.strategies is not None else None,
            "user": self.user,
            "hash": self.digest,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def key_id_of(key: str) -> str | None:
    """The public id inside a key of the ``og_<id>_<secret>`` form, or ``None`` for anything else."""
    return token_id_of(KEY_PREFIX, key)


class KeyFileError(StartupError):
    """The key file cannot be used; the message names the file and the place of the problem."""


@dataclass(frozen=True, slots=True)
class KeyFile:
    path: Path
    secret: bytes
    entries: tuple[KeyEntry, ...]

    @classmethod
    def new(cls, path: Path) -> KeyFile:
        return cls(path, secrets.token_bytes(32), ())

    @classmethod
    def load(cls, path: Path) -> KeyFile:
        """Read and check the key file, or raise :class:`KeyFileError` naming the file and the JSON path."""
        missing = f"create a key with 'ordergate keys create --role admin --file {path}'"
        document = read_document(path, "key file", missing, KeyFileError)
        try:
            return _parse(path, document)
        except _Problem as exc:
            raise KeyFileError(f"{path}: {exc.path}: {exc.problem}") from None

    @classmethod
    def load_or_new(cls, path: Path) -> KeyFile:
        return cls.load(path) if path.exists() else cls.new(path)

    def create(
        self,
        role: Role,
        *,
        name: str | None = None,
        strategies: Iterable[str] | None = None,
        user: str | None = None,
        now: str,
    ) -> tuple[KeyFile, KeyEntry, str]:
        """A new key: the file that holds it (not yet saved), its entry, and the key (shown once)."""
        listed = tuple(dict.fromkeys(strategies)) if strategies else None
        if listed is not None and role is not Role.PRODUCER:
            raise ValueError("--strategy limits a producer key; other roles cannot take it")
        if user is not None and role is not Role.VIEWER:
            raise ValueError("--user binds a viewer key; other roles cannot take it")
        for what, value in [("strategy", s) for s in listed or ()] + [("user", user), ("name", name)]:
            problem = name_problem(value) if value is not None else None
            if problem is not None:
                raise ValueError(f"{what} {problem}")
        taken = {entry.key_id for entry in self.entries}
        key_id = secrets.token_hex(6)
        while key_id in taken:  # pragma: no cover - 48 random bits
            key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        entry = KeyEntry(
            key_id=key_id,
            name=name or f"{role.value}-{key_id}",
            role=role,
            strategies=listed,
            user=user,
            digest=token_digest(self.secret, key).hex(),
            created_at=now,
        )
        return replace(self, entries=(*self.entries, entry)), entry, key

    def revoke(self, which: str, *, now: str) -> tuple[KeyFile, KeyEntry]:
        """Revoke the key whose id or name is ``which`` (it stays in the file, marked revoked)."""
        matches = [e for e in self.entries if e.key_id == which] or [e for e in self.entries if e.name == which]
        if not matches:
            raise ValueError(f"no key has the id or name {which!r}; 'ordergate keys list' shows them")
        if len(matches) > 1:
            ids = ", ".join(e.key_id for e in matches)
            raise ValueError(f"{len(matches)} keys are named {which!r} ({ids}); revoke one by its id")
        target = matches[0]
        if not target.is_active:
            raise ValueError(f"key {target.key_id} ({target.name}) was already revoked at {target.revoked_at}")
        revoked = replace(target, revoked_at=now)
        entries = tuple(revoked if e is target else e for e in self.entries)
        return replace(self, entries=entries), revoked

    def save(self) -> None:
        """Write the file atomically, readable by its owner only."""
        document = {
            "version": FILE_VERSION,
            "secret": self.secret.hex(),
            "keys": [entry.to_document() for entry in self.entries],
        }
        save_private(self.path, document)


class _Problem(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _field(entry: dict[str, Any], index: int, name: str, kinds: tuple[type, ...], *, nullable: bool = False) -> Any:
    value = entry.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, kinds):
        raise _Problem(json_path("keys", index, name), f"must be {' or '.join(k.__name__ for k in kinds)}, "
                       f"not {json_type(value)}")  # fmt: skip
    return value


_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_KEY_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


def _parse(path: Path, document: object) -> KeyFile:
    """Check every entry completely, so that nothing built from the file afterwards can fail on it."""
    if not isinstance(document, dict):
        raise _Problem("$", f"must be an object, not {json_type(document)}")
    version = document.get("version")
    if type(version) is not int or version != FILE_VERSION:
        raise _Problem(json_path("version"), f"must be {FILE_VERSION}")
    secret = document.get("secret")
    try:
        secret_bytes = bytes.fromhex(secret) if isinstance(secret, str) else b""
    except ValueError:
        secret_bytes = b""
    if len(secret_bytes) < 16:
        raise _Problem(json_path("secret"), "must be a hex string of at least 16 bytes")
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise _Problem(json_path("keys"), f"must be a list, not {json_type(keys)}")
    entries: list[KeyEntry] = []
    seen: set[str] = set()
    for index, entry in enumerate(keys):
        if not isinstance(entry, dict):
            raise _Problem(json_path("keys", index), f"must be an object, not {json_type(entry)}")
        key_id = _field(entry, index, "id", (str,))
        if _KEY_ID.fullmatch(key_id) is None:
            raise _Problem(
                json_path("keys", index, "id"), f"must be 1 to 64 ASCII letters, digits or '-', not {key_id!r}"
            )
        if key_id in seen:
            raise _Problem(json_path("keys", index, "id"), f"{key_id!r} repeats the id of an earlier key")
        seen.add(key_id)
        name = _field(entry, index, "name", (str,))
        if (problem := name_problem(name)) is not None:
            raise _Problem(json_path("keys", index, "name"), f"key name {problem}")
        try:
            role = Role(_field(entry, index, "role", (str,)))
        except ValueError:
            raise _Problem(json_path("keys", index, "role"), "must be producer, viewer or admin") from None
        strategies = _field(entry, index, "strategies", (list,), nullable=True)
        user = _field(entry, index, "user", (str,), nullable=True)
        for position, value in enumerate(strategies or ()):
            problem = name_problem(value)
            if problem is not None:
                raise _Problem(json_path("keys", index, "strategies", position), f"strategy name {problem}")
        if user is not None and (problem := name_problem(user)) is not None:
            raise _Problem(json_path("keys", index, "user"), f"user name {problem}")
        digest = _field(entry, index, "hash", (str,))
        if _HEX_DIGEST.fullmatch(digest) is None:
            raise _Problem(json_path("keys", index, "hash"), "must be 64 hex characters (HMAC-SHA256)")
        entries.append(
            KeyEntry(
                key_id=key_id,
                name=name,
                role=role,
                strategies=tuple(strategies) if strategies is not None else None,
                user=user,
                digest=digest,
                created_at=_field(entry, index, "created_at", (str,)),
                revoked_at=_field(entry, index, "revoked_at", (str,), nullable=True),
            )
        )
    return KeyFile(path, secret_bytes, tuple(entries))


class KeyRing(TokenRing[Principal]):
    """The active keys of a key file, as a running gateway checks them on every request."""

    prefix, what, log = KEY_PREFIX, "key file", log

    def __init__(self, keys: KeyFile, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(keys.path, *self._active(keys), clock=clock)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        return cls(KeyFile.load(path))

    @staticmethod
    def _active(keys: KeyFile) -> tuple[bytes, dict[str, tuple[bytes, Principal]]]:
        return keys.secret, {e.key_id: (bytes.fromhex(e.digest), e.principal()) for e in keys.entries if e.is_active}

    def _read(self) -> tuple[bytes, dict[str, tuple[bytes, Principal]]]:
        return self._active(KeyFile.load(self.path))

    @property
    def active_keys(self) -> int:
        return len(self._by_id)

    def authenticate(self, key: str) -> Principal | None:
        """The principal of ``key``, or ``None`` when it is not an active key of the file."""
        return self._find(key)
