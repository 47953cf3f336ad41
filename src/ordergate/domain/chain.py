"""The hash chain that makes the order log tamper-evident (SPEC section 9), in one place.

Each stored order carries ``chain_hash``: SHA-256 over the hash of the previous order *of its chain*
and the order's own canonical content, so altering, inserting or removing any stored order breaks
the chain from there on. Which orders form one chain is the store's policy (:class:`ChainPolicy`):
the embedded store keeps one chain over the whole log; the shared PostgreSQL store keeps one chain
per instrument, because a single chain would make every group of every process wait for the one
before it, while orders on different instruments never otherwise wait for each other.

:class:`Chains` is used by the stores when they write (linking each order to its chain's head) and
by ``verify`` when it reads (checking each stored link); :meth:`Chains.anchor` is one digest over
every chain head, which an operator can write down elsewhere to prove later that the whole log up to
there was not rewritten.

The canonical content of an order is one JSON array whose last two members are its applied effects
and its refusals, the very JSON the stores keep in the ``applied`` and ``rejected_for`` columns
(:func:`canonical_effects`). A store encodes them once and hands the bytes to :meth:`Chains.link`,
which hashes the order's few other fields, then those bytes as they are, in pieces: an order for
100,000 users is encoded once (not once for the row and again for the hash) and never copied into
one buffer. The bytes hashed are exactly those of :func:`canonical_content`, so every stored hash
stays what it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import orjson

from ordergate.domain.model import Decision
from ordergate.domain.record import OrderRecord

GENESIS_HASH = "0" * 64
"""The "previous hash" of the first order of a chain."""

ChainPolicy = Callable[[OrderRecord], str]
"""The chain an order belongs to (its key)."""


def single_chain(record: OrderRecord) -> str:
    """One chain over the whole log (the embedded store)."""
    return ""


def chain_per_instrument(record: OrderRecord) -> str:
    """One chain per instrument (the shared store)."""
    return record.order.instrument


CanonicalEffects = tuple[bytes, bytes]
"""An order's applied effects and refusals as canonical JSON (see :func:`canonical_effects`)."""


def canonical_effects(decision: Decision) -> CanonicalEffects:
    """``[[user, action, position_strategy], ...]`` and ``[[user, reason], ...]`` as compact JSON.

    An effect or a refusal is a named tuple, which orjson leaves to ``default``: ``tuple`` turns each
    into the plain tuple orjson writes as an array, inside orjson's own loop (no list per user).
    """
    return orjson.dumps(decision.applied, default=tuple), orjson.dumps(decision.rejected_for, default=tuple)


def _canonical_head(record: OrderRecord) -> bytes:
    """The canonical content up to its effects: ``[order_id, ..., client_order_id,`` (the array left open).

    An order with fields of SPEC section 10 (:attr:`OrderRecord.has_entry_fields`) has ``origin, actor,
    risk_fingerprint, signal_time`` after ``client_order_id``, and then ``door`` (SPEC section 11) if it
    has one; one without keeps the older form, so every hash stored before those fields existed stays valid.
    """
    decision = record.decision
    entry: list[str | None] = (
        [record.origin.value, record.actor, record.risk_fingerprint, record.signal_time]
        if record.has_entry_fields
        else []
    )
    if record.door is not None:
        entry.append(record.door.value)
    return (
        orjson.dumps(
            [
                record.order_id,
                record.received_at,
                record.order.strategy,
                record.order.instrument,
                record.order.side.value,
                decision.status.value,
                decision.reason.value if decision.reason is not None else None,
                record.scope.value,
                record.profile_fingerprint,
                record.controls_fingerprint,
                record.client_order_id,
                *entry,
            ]
        )[:-1]
        + b","
    )


def canonical_content(record: OrderRecord, effects: CanonicalEffects | None = None) -> bytes:
    """The canonical JSON of what a stored order says (not its positions, which the log re-derives).

    ``[order_id, received_at, strategy, instrument, side, status, reason, scope, profile_fingerprint,
    controls_fingerprint, client_order_id, (origin, actor, risk_fingerprint, signal_time, (door,)) applied,
    rejected_for]``, compact (the four entry fields only when the order has any of them, ``door`` only when
    it has one); ``effects`` are the order's :func:`canonical_effects` when the caller has them already.
    """
    applied, rejected_for = effects if effects is not None else canonical_effects(record.decision)
    return b"".join((_canonical_head(record), applied, b",", rejected_for, b"]"))


def chain_hash(previous: str, record: OrderRecord, effects: CanonicalEffects | None = None) -> str:
    """SHA-256 (hex) over the previous order's hash and this order's canonical content.

    The content is fed to the hash in pieces, the effects as given (:func:`canonical_content` is the
    same bytes in one buffer).
    """
    applied, rejected_for = effects if effects is not None else canonical_effects(record.decision)
    digest = hashlib.sha256(previous.encode("ascii") + b"\n" + _canonical_head(record))
    digest.update(applied)
    digest.update(b",")
    digest.update(rejected_for)
    digest.update(b"]")
    return digest.hexdigest()


class Chains:
    """The heads of every chain of one log under one policy; links or checks orders in order_id order."""

    __slots__ = ("heads", "key_of")

    def __init__(self, key_of: ChainPolicy, heads: Mapping[str, str] | None = None) -> None:
        self.key_of = key_of
        self.heads: dict[str, str] = dict(heads or {})

    def head(self, key: str) -> str:
        return self.heads.get(key, GENESIS_HASH)

    def expected(self, record: OrderRecord) -> str:
        """The link ``record`` must carry after the orders seen so far (nothing changes)."""
        return chain_hash(self.head(self.key_of(record)), record)

    def link(self, record: OrderRecord, effects: CanonicalEffects | None = None) -> str:
        """Link ``record`` as the next order of its chain and return its hash (``effects``: its
        :func:`canonical_effects`, when the caller encoded them already for its row)."""
        key = self.key_of(record)
        linked = self.heads[key] = chain_hash(self.head(key), record, effects)
        return linked

    def advance(self, record: OrderRecord, stored_hash: str) -> None:
        """Take a checked stored link as its chain's new head."""
        self.heads[self.key_of(record)] = stored_hash

    def anchor(self) -> str | None:
        """One digest over every chain head (``None`` before the first order).

        With one chain it is that chain's head itself, so an anchor written down by an earlier
        version still compares; with several it covers each head, so no chain can be rewritten alone.
        """
        if not self.heads:
            return None
        if list(self.heads) == [""]:
            return self.heads[""]
        return hashlib.sha256(orjson.dumps(sorted(self.heads.items()))).hexdigest()
