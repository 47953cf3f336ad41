"""What the FIX acceptor keeps durably, behind one narrow interface: :class:`FixJournal`.

Per session (the counterparty's SenderCompID and ``ORDERGATE``): the next MsgSeqNum expected in and
the next one to send, and every application message sent (its frame, by MsgSeqNum) so that a
ResendRequest can be answered after a crash. Admin messages are not kept: a resend gap-fills them.

The acceptor records a batch of outgoing messages together with the counters *before* it writes
them to the socket (one transaction), so nothing is ever sent that a restarted gateway does not
know it sent: a counterparty never sees a MsgSeqNum used twice for two different messages.

The journal is not part of an order's transaction, and need not be: the decision is durable in the
order log first (the sequencer answers only once it is committed), then its ExecutionReport is
journaled, then sent. A crash between the commit and the journal loses only the report, which was
never sent; the counterparty's MsgSeqNum for the NewOrderSingle is then above the stored expected
number (the incoming counter is journaled with the report), so on reconnect the acceptor asks for a
resend, the counterparty sends the NewOrderSingle again with the same ``ClOrdID``, and the sequencer
answers it with the stored decision (a replay, never a second decision). A report that was sent was
journaled, so a counterparty that missed it gets it again by a ResendRequest. No answered order is
lost and no order is decided twice.

Implementations: :class:`MemoryJournal` (tests, and nothing else), and one per store
(:mod:`ordergate.store.sqlite.fix_journal`, :mod:`ordergate.store.postgres.fix_journal`) in the
store's own database, migrated with the store's schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ordergate.fix.session import FRESH, SessionKey, SessionState

SentMessage = tuple[int, bytes]
"""An application message as sent: its MsgSeqNum and its whole frame."""


class FixJournal(Protocol):
    async def open(self) -> None:
        """Be ready to load and record (the store's schema is already migrated by the store)."""
        ...

    async def close(self) -> None: ...

    async def load(self, key: SessionKey) -> SessionState:
        """The session's stored counters (:data:`~ordergate.fix.session.FRESH` for a new one)."""
        ...

    async def record(self, key: SessionKey, state: SessionState, sent: Sequence[SentMessage]) -> None:
        """Store the counters and the messages about to be sent, durably, as one; raises
        :class:`~ordergate.errors.StoreUnavailable` when it could not (then nothing may be sent)."""
        ...

    async def sent_between(self, key: SessionKey, begin: int, end: int) -> list[SentMessage]:
        """The stored messages with MsgSeqNum in ``begin..end``, in order."""
        ...

    async def reset(self, key: SessionKey) -> None:
        """Forget the session's messages and start its counters at 1 (a Logon with ResetSeqNumFlag)."""
        ...

    async def claim(self, key: SessionKey) -> bool:
        """Hold the session for this process while it is logged on here; ``False`` when another gateway
        process of the same store holds it (two writers of one session's numbers would reuse them)."""
        ...

    async def release(self, key: SessionKey) -> None:
        """Let the session go (its connection closed)."""
        ...


class MemoryJournal:
    """A :class:`FixJournal` in memory: for tests of the acceptor; a restart forgets everything."""

    def __init__(self) -> None:
        self.states: dict[SessionKey, SessionState] = {}
        self.messages: dict[SessionKey, dict[int, bytes]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def load(self, key: SessionKey) -> SessionState:
        return self.states.get(key, FRESH)

    async def record(self, key: SessionKey, state: SessionState, sent: Sequence[SentMessage]) -> None:
        self.states[key] = state
        self.messages.setdefault(key, {}).update(sent)

    async def sent_between(self, key: SessionKey, begin: int, end: int) -> list[SentMessage]:
        stored = self.messages.get(key, {})
        return [(seq, stored[seq]) for seq in sorted(stored) if begin <= seq <= end]

    async def reset(self, key: SessionKey) -> None:
        self.states.pop(key, None)
        self.messages.pop(key, None)

    async def claim(self, key: SessionKey) -> bool:
        return True  # one process: the acceptor's own registry keeps one connection per session

    async def release(self, key: SessionKey) -> None:
        return None
