"""The FIX acceptor: an asyncio TCP server in the gateway's event loop, one :class:`Connection` per socket.

A connection owns the I/O of one FIX session: it cuts the bytes into frames (:mod:`.codec`), gives
them to its pure :class:`~ordergate.fix.session.Session`, and carries out the steps it answers. The
frames of one read are handled as a batch: the NewOrderSingles among them are decided concurrently
(so they can share the store's group commit), their answers keep the sequence numbers the session
gave them, and the batch's new application messages and counters are journaled in one write
*before* anything is written to the socket. A step that loads the session, answers a resend or
closes first flushes what came before it. A timer ticks the session every second (heartbeats,
test requests, timeouts). One session (the counterparty's SenderCompID) is logged on on one
connection at a time; a second Logon for it is refused with a Logout.

Nothing a counterparty sends drops the connection unless the session protocol says so: garbled
frames are skipped (logged), malformed messages rejected. A journal that cannot store closes the
connection without sending (the counterparty reconnects and the session resumes from what was stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime

from ordergate.errors import StartupError, StoreUnavailable
from ordergate.fix.application import Answer, OrderDesk, business_reject
from ordergate.fix.codec import FrameReader, Garbled, Message, shown
from ordergate.fix.journal import FixJournal
from ordergate.fix.session import LogonCheck, Outbound, Pending, Session, SessionKey, Step, open_logon
from ordergate.security.keys import KeyRing, Principal, Role
from ordergate.service.sequencing import Sequencing

log = logging.getLogger(__name__)

READ_BYTES = 64 * 1024
TICK_SECONDS = 1.0
STOP_SECONDS = 3.0
"""How long a stopping gateway waits for its sessions' Logout handshakes."""

Now = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def listening_socket(host: str, port: int) -> socket.socket:
    """The acceptor's socket, bound and listening before any server starts, so that a port in use is one
    line at start-up (:class:`StartupError`), not a failed application start."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(f"--fix-port {port}: cannot listen on {host}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise StartupError(f"--fix-port {port}: cannot listen on {host}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def key_check(keys: KeyRing | None) -> LogonCheck:
    """The Logon check of ``--auth``: ``Password (554)`` must be an active producer (or admin) key."""
    if keys is None:
        return open_logon

    def check(password: str | None) -> tuple[Principal | None, str | None]:
        if not password:
            return None, "Password (554) must carry a producer API key (the gateway runs with --auth)"
        principal = keys.authenticate(password)
        if principal is None:
            return None, "Password (554) is not an active API key"
        if principal.role not in (Role.PRODUCER, Role.ADMIN):
            return None, f"the key {principal.name} is a {principal.role} key; sending orders needs a producer key"
        return principal, None

    return check


class FixAcceptor:
    """Serves the FIX sessions of ``listening`` (:func:`listening_socket`) into ``sequencer``, journaled in
    ``journal``."""

    def __init__(
        self,
        sequencer: Sequencing,
        journal: FixJournal,
        listening: socket.socket,
        *,
        keys: KeyRing | None = None,
        now: Now = utc_now,
    ) -> None:
        self._socket = listening
        self.host, self.port = listening.getsockname()[:2]
        self._desk = OrderDesk(sequencer)
        self._journal = journal
        self._keys = keys
        self._check = key_check(keys)
        self._now = now
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.logged_on: dict[SessionKey, Connection] = {}

    async def start(self) -> None:
        await self._journal.open()
        self._server = await asyncio.start_server(self._serve, sock=self._socket, limit=READ_BYTES)
        log.info("FIX 4.4 acceptor listening on %s:%d (TargetCompID ORDERGATE)", self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, log every session out (or wait :data:`STOP_SECONDS`), then close the journal."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            await connection.log_out("the gateway is stopping")
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=STOP_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        await self._journal.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = Connection(self, reader, writer, Session(self._now(), self._check))
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            self._tasks.discard(task)
            key = connection.session.key
            if key is not None and self.logged_on.get(key) is connection:
                del self.logged_on[key]
                await self._journal.release(key)


class Connection:
    """One socket and its session; every step is carried out under one lock (reads and ticks)."""

    def __init__(
        self, acceptor: FixAcceptor, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session
    ) -> None:
        self._acceptor = acceptor
        self._reader, self._writer = reader, writer
        self.session = session
        self._frames = FrameReader()
        self._lock = asyncio.Lock()
        self._closed: str | None = None
        self._stored = session.state
        self._loaded = False
        """Whether this connection's session was loaded from the journal (only then are its counters stored)."""
        peer = writer.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def run(self) -> None:
        ticker = asyncio.create_task(self._tick())
        try:
            while self._closed is None:
                data = await self._reader.read(READ_BYTES)
                if not data:
                    self._closed = self._closed or "the counterparty closed the connection"
                    break
                async with self._lock:
                    if self._closed is None:
                        await self._handle(self._frames.feed(data))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self._closed = self._closed or f"connection lost: {exc}"
        except StoreUnavailable as exc:
            self._closed = f"the FIX journal cannot store, nothing more is sent: {exc}"
            log.error("FIX %s (%s): %s", self.session.key, self._peer, self._closed)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
            log.info("FIX %s (%s) disconnected: %s", self.session.key or "-", self._peer, self._closed)

    async def log_out(self, text: str) -> None:
        async with self._lock:
            if self._closed is None:
                try:
                    await self._step(self.session.logout(text, self._acceptor._now()))
                except (ConnectionError, StoreUnavailable) as exc:  # the peer is gone already, or the store
                    self._close(f"{type(exc).__name__}: {exc}")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            async with self._lock:
                if self._closed is not None:
                    return
                try:
                    await self._step(self.session.tick(self._acceptor._now()))
                except (ConnectionError, StoreUnavailable) as exc:
                    self._close(f"{type(exc).__name__}: {exc}")
                    return

    async def _handle(self, items: list[Message | Garbled]) -> None:
        batch: list[Outbound | Pending] = []
        for item in items:
            if isinstance(item, Garbled):
                log.warning("FIX %s (%s): ignored garbled bytes: %s", self.session.key or "-", self._peer, item.reason)
                continue
            if self._closed is not None:
                return
            await self._carry_out(self.session.receive(item, self._acceptor._now()), batch)
        await self._flush(batch)

    async def _step(self, step: Step) -> None:
        """Carry out one step on its own, and send what it says at once."""
        batch: list[Outbound | Pending] = []
        await self._carry_out(step, batch)
        await self._flush(batch)

    async def _carry_out(self, step: Step, batch: list[Outbound | Pending]) -> None:
        """Do what ``step`` says; its messages join ``batch`` (flushed here when the step needs it)."""
        if step.reset:
            await self._flush(batch)
            assert self.session.key is not None
            await self._acceptor._journal.reset(self.session.key)
        batch.extend(step.out)
        if step.load is not None:
            await self._flush(batch)
            await self._carry_out(await self._log_on(step.load), batch)
        if step.resend is not None:
            await self._flush(batch)
            begin, end = step.resend
            assert self.session.key is not None
            stored = await self._acceptor._journal.sent_between(self.session.key, begin, end)
            batch.extend(self.session.resent(stored, begin, end, self._acceptor._now()).out)
        if step.close is not None:
            await self._flush(batch)
            self._close(step.close)

    async def _log_on(self, key: SessionKey) -> Step:
        logged_on = self._acceptor.logged_on
        holder = logged_on.get(key)
        if holder is not None and holder is not self:
            return self.session.refuse(f"the session {key} is already logged on from another connection")
        if not await self._acceptor._journal.claim(key):
            return self.session.refuse(f"the session {key} is logged on at another gateway process")
        logged_on[key] = self
        state = await self._acceptor._journal.load(key)
        self._stored, self._loaded = state, True
        log.info("FIX %s (%s) logged on, next in %d, next out %d", key, self._peer, *state)
        return self.session.resume(state, self._acceptor._now())

    async def _flush(self, batch: list[Outbound | Pending]) -> None:
        """Answer the batch's pending orders, journal its new messages and counters, then send it all."""
        if not batch and self.session.state == self._stored:
            return
        items = list(batch)
        batch.clear()
        pending = [item for item in items if isinstance(item, Pending)]
        answers = await asyncio.gather(*(self._answer(item.message) for item in pending)) if pending else []
        answered = iter(answers)
        now = self._acceptor._now()
        outgoing: list[Outbound] = []
        for item in items:
            if isinstance(item, Pending):
                answer = next(answered)
                outgoing.append(self.session.answer(item, answer.msg_type, answer.body, now, answer.header))
            else:
                outgoing.append(item)
        key, state = self.session.key, self.session.state
        journaled = [(out.seq, out.frame) for out in outgoing if out.journal]
        if key is not None and self._loaded and (journaled or state != self._stored):
            await self._acceptor._journal.record(key, state, journaled)
            self._stored = state
        if outgoing:
            self._writer.write(b"".join(out.frame for out in outgoing))
            await self._writer.drain()
            if log.isEnabledFor(logging.DEBUG):
                for out in outgoing:
                    log.debug("FIX %s out: %s", key, shown(out.frame))

    async def _answer(self, message: Message) -> Answer:
        principal = self.session.principal
        keys = self._acceptor._keys
        if keys is not None:  # the key's rights now (the key file is re-read when it changes), not at Logon
            principal = keys.authenticate(self.session.password) if self.session.password else None
            if principal is None:
                text = "the session's key (Password 554) is no longer active: log on again with an active key"
                return business_reject(message, "6", text)
        try:
            return await self._acceptor._desk.answer(message, principal)
        except Exception:  # a bug: the session must still answer the message, and go on
            log.exception("FIX %s: NewOrderSingle %s could not be handled", self.session.key, shown(message.raw))
            return business_reject(message, "0", "the order could not be handled; ordergate logged the error")

    def _close(self, reason: str) -> None:
        self._closed = reason
        self._reader.feed_eof()
