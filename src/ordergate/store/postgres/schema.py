"""The PostgreSQL schema as forward-only migrations; applied versions are rows of ``schema_migrations``.

The tables mean what their SQLite namesakes mean (:mod:`ordergate.store.sqlite.schema`), at the
SQLite schema's latest version; only the spelling differs where PostgreSQL asks for it (``user`` is
a reserved word, so the column is ``user_name``). ``order_ids`` is the sequence the shared sequencer
draws order ids from inside its locked section; it must keep ``CACHE 1`` so that ids are handed out
in the real-time order of the calls, across sessions (a per-session cache would break that).

Never edit a migration that has shipped: add the next one. All of them run in one transaction that
holds the schema lock, so processes starting together migrate once.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE meta (
            key   text PRIMARY KEY,
            value text NOT NULL
        );
        CREATE TABLE profiles (
            fingerprint text PRIMARY KEY,
            document    text NOT NULL
        );
        CREATE SEQUENCE order_ids AS bigint START 1 CACHE 1;
        CREATE TABLE orders (
            order_id            bigint PRIMARY KEY,
            received_at         text NOT NULL,
            strategy            text NOT NULL,
            instrument          text NOT NULL,
            side                text NOT NULL CHECK (side IN ('BUY', 'SELL')),
            status              text NOT NULL CHECK (status IN ('ACCEPTED', 'REJECTED')),
            reason              text,
            scope               text NOT NULL CHECK (scope IN ('account', 'strategy')),
            profile_fingerprint text NOT NULL,
            client_order_id     text UNIQUE,
            applied             text NOT NULL,
            rejected_for        text NOT NULL
        );
        CREATE INDEX orders_by_strategy ON orders (strategy, order_id);
        CREATE INDEX orders_by_instrument ON orders (instrument, order_id);
        CREATE TABLE positions (
            position_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_name       text NOT NULL,
            scope_strategy  text NOT NULL,
            instrument      text NOT NULL,
            strategy        text NOT NULL,
            opened_order_id bigint NOT NULL,
            opened_at       text NOT NULL,
            UNIQUE (user_name, scope_strategy, instrument)
        );
        CREATE INDEX positions_by_instrument ON positions (instrument);
        CREATE TABLE trades (
            trade_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_name        text NOT NULL,
            strategy         text NOT NULL,
            instrument       text NOT NULL,
            opened_order_id  bigint NOT NULL,
            opened_at        text NOT NULL,
            closed_order_id  bigint NOT NULL,
            closed_at        text NOT NULL,
            closing_strategy text NOT NULL
        );
        CREATE INDEX trades_by_user ON trades (user_name, trade_id);
        """,
    ),
    (
        2,
        """
        ALTER TABLE orders ADD COLUMN controls_fingerprint text;
        """,
    ),
    (
        3,
        """
        CREATE TABLE controls_sets (
            fingerprint text PRIMARY KEY,
            document    text NOT NULL
        );
        CREATE TABLE control_changes (
            change_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at          text NOT NULL,
            level       text NOT NULL CHECK (level IN ('global', 'strategy', 'user')),
            target      text,
            state       text NOT NULL CHECK (state IN ('ACTIVE', 'HALTED', 'REDUCE_ONLY')),
            changed_by  text,
            fingerprint text NOT NULL REFERENCES controls_sets (fingerprint)
        );
        """,
    ),
    (
        4,
        """
        ALTER TABLE orders ADD COLUMN chain_hash text;
        """,
    ),
    (
        5,
        """
        DROP INDEX IF EXISTS positions_by_instrument;
        CREATE INDEX IF NOT EXISTS positions_by_instrument ON positions (instrument, position_id);
        CREATE INDEX IF NOT EXISTS positions_by_user ON positions (user_name, position_id);
        CREATE INDEX IF NOT EXISTS positions_by_strategy ON positions (strategy, position_id);
        CREATE INDEX IF NOT EXISTS positions_by_user_order ON positions (user_name, opened_order_id);
        CREATE INDEX IF NOT EXISTS trades_by_strategy ON trades (strategy, trade_id);
        CREATE INDEX IF NOT EXISTS trades_by_instrument ON trades (instrument, trade_id);
        CREATE INDEX IF NOT EXISTS trades_by_user_opened ON trades (user_name, opened_order_id);
        CREATE INDEX IF NOT EXISTS trades_by_user_closed ON trades (user_name, closed_order_id);
        """,
    ),
    (
        6,
        """
        ALTER TABLE orders ADD COLUMN IF NOT EXISTS commit_xid bigint NOT NULL DEFAULT 0;
        ALTER TABLE orders ALTER COLUMN commit_xid SET DEFAULT pg_current_xact_id()::text::bigint;
        CREATE INDEX IF NOT EXISTS orders_by_commit ON orders (commit_xid, order_id);
        """,
    ),
    (
        7,
        """
        CREATE TABLE IF NOT EXISTS order_users (
            user_name text NOT NULL,
            order_id  bigint NOT NULL,
            PRIMARY KEY (user_name, order_id)
        );
        DROP INDEX IF EXISTS positions_by_user_order;
        DROP INDEX IF EXISTS trades_by_user_opened;
        DROP INDEX IF EXISTS trades_by_user_closed;
        """,
    ),
    (
        8,
        """
        ALTER TABLE orders ADD COLUMN IF NOT EXISTS origin text;
        ALTER TABLE orders ADD COLUMN IF NOT EXISTS actor text;
        ALTER TABLE orders ADD COLUMN IF NOT EXISTS risk_fingerprint text;
        ALTER TABLE orders ADD COLUMN IF NOT EXISTS signal_time text;
        ALTER TABLE control_changes ADD COLUMN IF NOT EXISTS reason text;
        ALTER TABLE control_changes ADD COLUMN IF NOT EXISTS order_id bigint;
        CREATE TABLE IF NOT EXISTS risk_sets (
            fingerprint text PRIMARY KEY,
            document    text NOT NULL
        );
        CREATE TABLE IF NOT EXISTS risk_changes (
            change_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at          text NOT NULL,
            kind        text NOT NULL CHECK (kind IN ('limits', 'session', 'square_off')),
            level       text,
            target      text,
            change      text NOT NULL,
            changed_by  text,
            fingerprint text NOT NULL REFERENCES risk_sets (fingerprint)
        );
        """,
    ),
    (
        9,
        """
        ALTER TABLE orders ADD COLUMN IF NOT EXISTS door text;
        """,
    ),
    (
        10,
        """
        CREATE TABLE IF NOT EXISTS fix_sessions (
            counterparty text NOT NULL,
            acceptor     text NOT NULL,
            next_in      bigint NOT NULL,
            next_out     bigint NOT NULL,
            PRIMARY KEY (counterparty, acceptor)
        );
        CREATE TABLE IF NOT EXISTS fix_messages (
            counterparty text NOT NULL,
            acceptor     text NOT NULL,
            seq          bigint NOT NULL,
            frame        bytea NOT NULL,
            PRIMARY KEY (counterparty, acceptor, seq)
        );
        """,
    ),
)
"""Version 3: trading controls, as SQLite's version 3 keeps them (the sets in force, named by
fingerprint, and every change made, in the order the changes committed). Version 4: each order's
hash-chain link; the chain is one per instrument (see :mod:`ordergate.store.postgres.store`), and the
orders stored before it are linked once by the migration (:data:`CHAIN_VERSION`). Version 5: the
listing indexes of SQLite's version 4, one for every filter, in the listing's id order
(:mod:`ordergate.store.queries`); ``positions_by_instrument`` gains ``position_id`` (the group
transactions' reads by instrument use it as before). The migration builds them inside its
transaction, so on a big log the gateways starting with it wait for the build once. Version 6: the
transaction that stored each order (``commit_xid``, its 64-bit id, set by the column's default so that
every writer sets it), which orders the cluster-wide event stream (see
:meth:`ordergate.store.postgres.store.PostgresStore.stream_page`); orders stored before it are 0,
ordered among themselves by order_id, all final. Version 7: a user's orders through ``order_users``, one
``(user_name, order_id)`` row per user an order applied to, written in the group transaction, instead of
three indexes over positions and trades that every open and close maintained (as SQLite's version 5,
see :mod:`ordergate.store.sqlite.schema`); the orders stored before it are entered once, from their
``applied`` column, by the migration's transaction (:data:`ORDER_USERS_VERSION`). Version 8: pre-trade
risk (SPEC section 10). Each order says how it came in (``origin``, ``actor``, ``signal_time``) and the
risk policy it was decided under (``risk_fingerprint``); the orders stored before it have NULL there,
which reads as origin ``strategy`` and no actor, and their hash-chain links stay valid (the chain
covers those fields only for an order that has any, :func:`~ordergate.domain.chain.canonical_content`).
The risk policies in force are kept like the controls of version 3: each document once by its
fingerprint (``risk_sets``), and every change of limits or of the session in the order the changes
committed (``risk_changes``; ``change`` is the JSON given, ``level`` and ``target`` are NULL for the
session) (:data:`ENTRY_VERSION`). Every statement is idempotent (``IF NOT EXISTS``), as those of
versions 6 and 7, so a store put back to an earlier version by hand migrates again. A ``square_off``
change marks the day's square-off as done; a control change gains its ``reason`` (``BREAKER``) and the
``order_id`` of the order that caused it, written in that order's transaction. Version 9: the door each
order came through (SPEC section 11), NULL in the orders stored before it, covered by the hash chain only
when set, as version 8's columns (:data:`DOOR_VERSION`); idempotent too. Version 10: the FIX
acceptor's journal, as SQLite's version 8 keeps it (:mod:`ordergate.store.postgres.fix_journal`): the
counters of each FIX session (``fix_sessions``) and the application messages it sent (``fix_messages``)."""

ENTRY_VERSION = 8
"""The schema version from which every order has the columns of how it came in and its risk policy."""

DOOR_VERSION = 9
"""The schema version from which every order has the column of the door it came through."""

ORDER_USERS_VERSION = 7
"""The schema version from which every order has its ``order_users`` rows."""

CONTROLS_VERSION = 2
"""The schema version from which every order keeps the fingerprint of its trading controls."""

CHAIN_VERSION = 4
"""The schema version from which every order carries its hash-chain link."""

LATEST_VERSION = MIGRATIONS[-1][0]

BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
"""The one table that exists before any migration: which migrations have run."""
