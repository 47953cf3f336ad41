"""What the key file and the hooks file share: keyed hashes of tokens, private atomic saves, hot reload.

Both files keep, per credential, a public id and an HMAC-SHA256 of the whole token under a random
secret of the file, never the token itself, which the CLI prints once. Tokens hold 256 random bits, so
a keyed fast hash is as safe as a slow one and costs about a microsecond per request; a presented
token is found by its id and its HMAC compared with :func:`hmac.compare_digest` (:func:`matches`).
Both files are written atomically, readable by their owner only (:func:`save_private`), and a running
gateway notices a change of either within a second (:class:`FileWatch`) without reading the file on
every request: it looks at the file's stat at most every :data:`RELOAD_CHECK_SECONDS`, and at once when
a token it does not know is presented, so that a credential made a moment ago works on its first use
(an operator who creates a hook and fires a test alert straight away must not get a 404 for it). What
the two files' holders share, finding a token and reloading a changed file, is :class:`TokenRing`.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import hmac
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import orjson

from ordergate.errors import StartupError

RELOAD_CHECK_SECONDS = 0.5
"""How often a running gateway looks whether a credentials file changed (a change is in force within a second)."""

T = TypeVar("T")
"""What a token stands for in a :class:`TokenRing` (a key's principal, a hook)."""

Stamp = tuple[int, int, int] | None
"""What says a file changed: its mtime (ns), size and inode, or ``None`` when it does not exist."""


def token_digest(secret: bytes, token: str) -> bytes:
    """HMAC-SHA256 of the whole token under the file's secret (what the file keeps, as hex)."""
    return hmac.digest(secret, token.encode("utf-8", "surrogateescape"), hashlib.sha256)


def matches(secret: bytes, token: str, digest: bytes) -> bool:
    """Whether ``token`` is the one whose digest is ``digest``, compared in constant time."""
    return hmac.compare_digest(token_digest(secret, token), digest)


def token_id_of(prefix: str, token: str) -> str | None:
    """The public id inside a token of the ``<prefix>_<id>_<secret>`` form, or ``None`` for anything else."""
    head, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if head != prefix or not token_id or not secret:
        return None
    return token_id


def read_document(path: Path, what: str, missing: str, error: Callable[[str], Exception]) -> Any:
    """The JSON document of the secrets file at ``path`` (``what``: "key file", "hooks file"), or ``error`` of
    one line naming the file: not found (with ``missing``, what to run to make one), unreadable, not JSON."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found; {missing}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON: {exc}") from None


def save_private(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON to ``path`` atomically (a reader sees the old file or the new
    one, never half of it), readable by its owner only (mode 0600)."""
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def file_stamp(path: Path) -> Stamp:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class FileWatch:
    """Whether a file changed since it was last loaded, looked at (one ``stat``) at most every
    :data:`RELOAD_CHECK_SECONDS` however often it is asked; the clock is injected for tests."""

    __slots__ = ("_clock", "_next_check", "_stamp", "path")

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._stamp = file_stamp(path)
        self._next_check = clock() + RELOAD_CHECK_SECONDS

    def changed(self, *, at_once: bool = False) -> bool:
        """True once per change of the file (the caller then reloads it, whatever comes of that).

        ``at_once`` looks at the stat even within :data:`RELOAD_CHECK_SECONDS` of the last look: for a
        token the holder does not know, which a new file may hold. One ``stat`` per such miss is cheap
        next to the request it refuses, and the file is still read once per change."""
        now = self._clock()
        if now < self._next_check and not at_once:
            return False
        self._next_check = now + RELOAD_CHECK_SECONDS
        stamp = file_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True


class TokenRing(abc.ABC, Generic[T]):
    """The active tokens of a secrets file, as a running gateway finds them on every request: by id, in
    memory, checked in constant time, the file reloaded when it changed (a subclass says how it reads).

    A token the ring does not know makes it look at the file at once rather than at the next look, so a
    credential made a moment ago works on its first use; a revoked one is refused at the next look."""

    prefix: ClassVar[str]
    """What every token of the file starts with (``og``, ``wh``)."""
    what: ClassVar[str]
    """The file, as log lines name it ("key file", "hooks file")."""
    log: ClassVar[logging.Logger]

    def __init__(
        self, path: Path, secret: bytes, by_id: dict[str, tuple[bytes, T]], *, clock: Callable[[], float]
    ) -> None:
        self.path = path
        self._secret, self._by_id = secret, by_id
        self._watch = FileWatch(path, clock=clock)

    @abc.abstractmethod
    def _read(self) -> tuple[bytes, dict[str, tuple[bytes, T]]]:
        """The file's secret and its active tokens' digests and values by id (raises on an unusable file)."""

    def _find(self, token: str) -> T | None:
        """What ``token`` stands for, or ``None`` (unknown, revoked or malformed alike)."""
        if self._watch.changed():
            self._reload()
        token_id = token_id_of(self.prefix, token)
        if token_id is None:
            return None
        found = self._by_id.get(token_id)
        if found is None and self._watch.changed(at_once=True):  # made since the last look?
            self._reload()
            found = self._by_id.get(token_id)
        if found is None:
            return None
        digest, value = found
        return value if matches(self._secret, token, digest) else None

    def _reload(self) -> None:
        """Load the changed file (each version of it is looked at once, whatever comes of it); the tokens
        loaded before stay in force when it cannot be used."""
        try:
            secret, by_id = self._read()  # both built before either is replaced
        except StartupError as exc:  # the file's problem, named in one line
            self.log.error("the %s changed but cannot be used; those loaded before stay in force: %s", self.what, exc)
            return
        except Exception:  # a bug, not the file: still no 500 on every request, still the old tokens
            self.log.exception("the %s %s changed but could not be loaded; the old stay in force", self.what, self.path)
            return
        self._secret, self._by_id = secret, by_id
        self.log.info("%s %s reloaded: %d active", self.what, self.path, len(by_id))
