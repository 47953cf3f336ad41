"""The gateway's side of the SQLite writer process: sending it work, and settling what a dead writer left.

:class:`WriterProcess` starts :mod:`ordergate.store.sqlite.writer_process` and talks to it over its
stdin and stdout through the event loop's pipe transports: no thread, one wake-up per answer.
Requests are pipelined; the writer answers them in order (all but ``later`` work, which
:meth:`WriterProcess.post` sends and nothing waits for: the side index's catch-up).

:class:`CommitPath` is what the store commits through. Its one hard case is a writer that dies (it
was killed, it crashed) while a group was in its hands: the group may or may not be on disk, and the
answer must be the truth. So the path starts a new writer, whose first act is a small write
(``fence``): SQLite's WAL may hold a dead writer's last transaction written and synced but not yet
published to the other connections, and a new transaction either publishes nothing of it and
overwrites it (it is gone for good) or, on a first connection's recovery, adopts it (it is stored
for good); only then does the path read the highest order id stored (``committed_through``) and
return normally when the whole group is there, or raise
:class:`~ordergate.errors.StoreUnavailable` when none of it is (one transaction: nothing between).
Until a new writer can read the file, the group waits: it is never answered 503 while it might be
stored (SPEC section 3: nothing of a 503 order is ever visible), and the store's readiness is 503
meanwhile, so that a load balancer sends new orders elsewhere.

The path knows nothing of SQL or processes (the simulation drives it with a fake writer that dies on
purpose before and after its commit point); the engine's parts come in as ``spawn``, ``fence`` and
``committed_through``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import pickle
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ordergate.errors import StoreUnavailable
from ordergate.store.sqlite.writer_process import HEADER, frame

log = logging.getLogger(__name__)

WRITER_COMMAND = (sys.executable, "-I", "-m", "ordergate.store.sqlite.writer_process")
"""How the writer process is started (``-I``: no environment variables or user site can change it)."""

T = TypeVar("T")


class WriterLost(Exception):
    """The writer ended before it answered: the outcome of the request in its hands is unknown."""


class WriterRefused(Exception):
    """The writer answered with an error: nothing of the request was stored."""


class WriterLink(Protocol):
    @property
    def alive(self) -> bool:
        """``False`` once the writer is known to have ended (a request would not even be sent)."""
        ...

    async def request(self, kind: str, payload: object) -> Any:
        """Raises :class:`WriterLost` or :class:`WriterRefused`."""
        ...

    def post(self, kind: str, payload: object) -> bool:
        """Send a request that is never answered (``later`` work); ``False`` if it could not be sent."""
        ...

    async def close(self) -> None: ...


class WriterProcess:
    """One running writer process and the answers it owes, oldest first."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._owed: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._lost: str | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read_answers(), name="sqlite-writer-answers")

    @classmethod
    async def spawn(
        cls,
        path: Path,
        *,
        fsync_every_commit: bool,
        keep_fds: Sequence[int] = (),
        command: Sequence[str] = WRITER_COMMAND,
    ) -> WriterProcess:
        """Start a writer for ``path``; ``keep_fds`` stay open in it (the store's lock, held until it exits).

        ``command`` runs the writer's module (tests run one that dies on purpose)."""
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                str(path),
                "full" if fsync_every_commit else "fast",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=tuple(keep_fds),
            )
        except OSError as exc:
            raise StoreUnavailable(f"cannot start the SQLite writer process: {exc.strerror or exc}") from None
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._lost is None

    async def request(self, kind: str, payload: object) -> Any:
        if self._lost is not None:
            raise WriterLost(self._lost)
        stdin = self._process.stdin
        assert stdin is not None
        owed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._owed.append(owed)
        try:
            stdin.write(frame((kind, payload)))
            await stdin.drain()
        except (ConnectionError, RuntimeError) as exc:  # the pipe broke: the writer is gone
            self._lose(f"the SQLite writer process ended ({exc})")
        status, result = await owed
        if status == "ok":
            return result
        raise WriterRefused(result)

    def post(self, kind: str, payload: object) -> bool:
        stdin = self._process.stdin
        if self._lost is not None or stdin is None or stdin.is_closing():
            return False
        stdin.write(frame((kind, payload)))  # buffered by the transport; the next request's drain waits for it
        return True

    async def _read_answers(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while True:
                (size,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
                answer = pickle.loads(await stdout.readexactly(size))
                if self._owed:
                    owed = self._owed.popleft()
                    if not owed.done():
                        owed.set_result(answer)
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError, ValueError):
            pass
        self._lose("the SQLite writer process ended")
        await self._process.wait()

    def _lose(self, why: str) -> None:
        if self._lost is None:
            self._lost = why
        while self._owed:
            owed = self._owed.popleft()
            if not owed.done():
                owed.set_exception(WriterLost(self._lost))
                owed.exception()  # its request may have been cancelled: nobody else reads it

    async def close(self, timeout: float = 30.0) -> None:
        """End of input: the writer finishes what it holds, then exits; killed if it takes ``timeout`` s."""
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class CommitPath:
    """Requests to a writer in another process, a new writer after one is lost, and the truth of a lost group."""

    def __init__(
        self,
        spawn: Callable[[], Awaitable[WriterLink]],
        fence: Callable[[WriterLink], Awaitable[None]],
        committed_through: Callable[[WriterLink], Awaitable[int]],
        location: str,
        *,
        settle_every: float = 0.05,
        settle_at_most_every: float = 1.0,
    ) -> None:
        self._spawn = spawn
        self._fence = fence
        self._committed_through = committed_through
        self._location = location
        self._settle_every = settle_every
        self._settle_at_most_every = settle_at_most_every
        self._link: WriterLink | None = None
        self._starting: asyncio.Future[WriterLink] | None = None
        self._settling: str | None = None

    @property
    def in_doubt(self) -> str | None:
        """What a lost writer left unsettled while no new writer can read the store, or ``None``."""
        return self._settling

    async def start(self) -> None:
        """Start the first writer; raises :class:`StoreUnavailable` if it cannot write."""
        try:
            await self._writer()
        except (WriterLost, WriterRefused) as exc:
            raise StoreUnavailable(f"SQLite store {self._location}: the writer process cannot write: {exc}") from None

    async def _writer(self) -> WriterLink:
        if self._link is not None and not self._link.alive:
            self._forget(self._link)  # it died idle: nothing of ours was in its hands
        if self._link is not None:
            return self._link
        if self._starting is None:  # one start for every request that finds no writer
            self._starting = asyncio.ensure_future(self._start_one())
        starting = self._starting
        try:
            link = await asyncio.shield(starting)
        finally:
            if self._starting is starting and starting.done():
                self._starting = None
        if self._link is None:
            self._link = link
        return self._link

    async def _start_one(self) -> WriterLink:
        link = await self._spawn()
        try:
            await self._fence(link)
        except BaseException:
            await link.close()
            raise
        return link

    async def request(self, kind: str, payload: object) -> Any:
        """Send one request; :class:`WriterLost` and :class:`WriterRefused` reach the caller."""
        link = await self._writer()
        try:
            return await link.request(kind, payload)
        except WriterLost:
            self._forget(link)
            raise

    def post(self, kind: str, payload: object) -> bool:
        """Send work no answer waits for to the writer in hand; ``False`` (dropped) if there is none."""
        link = self._link
        return link is not None and link.alive and link.post(kind, payload)

    def _forget(self, link: WriterLink) -> None:
        if self._link is link:
            self._link = None
            log.error("the SQLite writer process of %s ended; a new one starts now", self._location)

    async def commit(self, statements: object, first_order_id: int, last_order_id: int) -> None:
        """Store one group (orders ``first_order_id..last_order_id``) in one transaction, or raise.

        Returns only once the group is on disk; raises :class:`StoreUnavailable` only when none of it is.
        """
        try:
            await self.request("tx", statements)
        except WriterRefused as exc:
            raise StoreUnavailable(f"SQLite store {self._location}: {exc}") from None
        except WriterLost:
            what = f"orders {first_order_id}..{last_order_id}"
            through = await self.settle(self._committed_through, what)
            if through < last_order_id:
                raise StoreUnavailable(
                    f"SQLite store {self._location}: the writer process ended before {what} were stored"
                ) from None
            log.warning("%s were stored by a writer process that died before it answered", what)

    async def settle(self, read: Callable[[WriterLink], Awaitable[T]], what: str) -> T:
        """``read`` on a new, fenced writer: what a lost writer left is now stored for good, or gone for good.

        Retries until a writer can read the store (backing off to once a second), however long it takes.
        """
        pause = self._settle_every
        try:
            while True:
                link: WriterLink | None = None
                try:
                    link = await self._writer()
                    return await read(link)
                except WriterLost:
                    if link is not None:
                        self._forget(link)
                except (StoreUnavailable, WriterRefused) as exc:
                    if self._settling is None:
                        log.error("cannot read %s to learn whether %s were stored: %s", self._location, what, exc)
                self._settling = (
                    f"SQLite store {self._location}: its writer process died with {what} in hand, and no new "
                    "writer can read the store yet to learn whether they were stored"
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._settle_at_most_every)
        finally:
            self._settling = None

    async def close(self) -> None:
        if self._starting is not None:
            with contextlib.suppress(Exception):
                self._link = await self._starting
            self._starting = None
        if self._link is not None:
            link, self._link = self._link, None
            await link.close()
