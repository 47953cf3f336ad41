"""The SQLite schema as forward-only migrations; the version lives in ``PRAGMA user_version``.

Never edit a migration that has shipped: add the next one. Each runs in its own transaction.
"""

from __future__ import annotations

from ordergate.store.queries import APPLIED_EFFECTS, indexed_up_to

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE profiles (
            fingerprint TEXT PRIMARY KEY,
            document    TEXT NOT NULL
        );
        CREATE TABLE orders (
            order_id            INTEGER PRIMARY KEY,
            received_at         TEXT NOT NULL,
            strategy            TEXT NOT NULL,
            instrument          TEXT NOT NULL,
            side                TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
            status              TEXT NOT NULL CHECK (status IN ('ACCEPTED', 'REJECTED')),
            reason              TEXT,
            scope               TEXT NOT NULL CHECK (scope IN ('account', 'strategy')),
            profile_fingerprint TEXT NOT NULL,
            client_order_id     TEXT UNIQUE,
            applied             TEXT NOT NULL,
            rejected_for        TEXT NOT NULL
        );
        CREATE INDEX orders_by_strategy ON orders (strategy, order_id);
        CREATE INDEX orders_by_instrument ON orders (instrument, order_id);
        CREATE TABLE order_users (
            user     TEXT NOT NULL,
            order_id INTEGER NOT NULL,
            PRIMARY KEY (user, order_id)
        ) WITHOUT ROWID;
        CREATE TABLE positions (
            position_id     INTEGER PRIMARY KEY,
            user            TEXT NOT NULL,
            scope_strategy  TEXT NOT NULL,
            instrument      TEXT NOT NULL,
            strategy        TEXT NOT NULL,
            opened_order_id INTEGER NOT NULL,
            opened_at       TEXT NOT NULL,
            UNIQUE (user, scope_strategy, instrument)
        );
        CREATE TABLE trades (
            trade_id         INTEGER PRIMARY KEY,
            user             TEXT NOT NULL,
            strategy         TEXT NOT NULL,
            instrument       TEXT NOT NULL,
            opened_order_id  INTEGER NOT NULL,
            opened_at        TEXT NOT NULL,
            closed_order_id  INTEGER NOT NULL,
            closed_at        TEXT NOT NULL,
            closing_strategy TEXT NOT NULL
        );
        CREATE INDEX trades_by_user ON trades (user, trade_id);
        """,
    ),
    (
        2,
        """
        DROP TABLE order_users;
        """,
    ),
    (
        3,
        """
        ALTER TABLE orders ADD COLUMN controls_fingerprint TEXT;
        ALTER TABLE orders ADD COLUMN chain_hash TEXT;
        CREATE TABLE controls_sets (
            fingerprint TEXT PRIMARY KEY,
            document    TEXT NOT NULL
        );
        CREATE TABLE control_changes (
            change_id   INTEGER PRIMARY KEY,
            at          TEXT NOT NULL,
            level       TEXT NOT NULL CHECK (level IN ('global', 'strategy', 'user')),
            target      TEXT,
            state       TEXT NOT NULL CHECK (state IN ('ACTIVE', 'HALTED', 'REDUCE_ONLY')),
            changed_by  TEXT,
            fingerprint TEXT NOT NULL REFERENCES controls_sets (fingerprint)
        );
        """,
    ),
    (
        4,
        """
        CREATE INDEX positions_by_user ON positions (user, position_id);
        CREATE INDEX positions_by_strategy ON positions (strategy, position_id);
        CREATE INDEX positions_by_instrument ON positions (instrument, position_id);
        CREATE INDEX positions_by_user_order ON positions (user, opened_order_id);
        CREATE INDEX trades_by_strategy ON trades (strategy, trade_id);
        CREATE INDEX trades_by_instrument ON trades (instrument, trade_id);
        CREATE INDEX trades_by_user_opened ON trades (user, opened_order_id);
        CREATE INDEX trades_by_user_closed ON trades (user, closed_order_id);
        """,
    ),
    (
        5,
        """
        CREATE TABLE order_users (
            user     TEXT NOT NULL,
            order_id INTEGER NOT NULL,
            PRIMARY KEY (user, order_id)
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO order_users (user, order_id)
            SELECT user, order_id FROM (
                SELECT CASE WHEN effect.type = 'array' THEN json_extract(effect.value, '$[0]') END AS user,
                       orders.order_id AS order_id
                FROM orders, json_each(
                    CASE WHEN typeof(orders.applied) = 'text' AND json_valid(orders.applied)
                         THEN orders.applied ELSE '[]' END
                ) AS effect
            )
            WHERE typeof(user) = 'text';
        DROP INDEX positions_by_user_order;
        DROP INDEX trades_by_user_opened;
        DROP INDEX trades_by_user_closed;
        CREATE TABLE order_strategies (
            strategy TEXT NOT NULL,
            order_id INTEGER NOT NULL,
            PRIMARY KEY (strategy, order_id)
        ) WITHOUT ROWID;
        CREATE TABLE order_instruments (
            instrument TEXT NOT NULL,
            order_id   INTEGER NOT NULL,
            PRIMARY KEY (instrument, order_id)
        ) WITHOUT ROWID;
        INSERT INTO order_strategies (strategy, order_id) SELECT strategy, order_id FROM orders;
        INSERT INTO order_instruments (instrument, order_id) SELECT instrument, order_id FROM orders;
        INSERT INTO meta (key, value) SELECT 'indexed_order_id', coalesce(max(order_id), 0) FROM orders WHERE true
            ON CONFLICT (key) DO UPDATE SET value = excluded.value;
        DROP INDEX orders_by_strategy;
        DROP INDEX orders_by_instrument;
        CREATE TABLE trade_users (
            user     TEXT NOT NULL,
            trade_id INTEGER NOT NULL,
            PRIMARY KEY (user, trade_id)
        ) WITHOUT ROWID;
        CREATE TABLE trade_strategies (
            strategy TEXT NOT NULL,
            trade_id INTEGER NOT NULL,
            PRIMARY KEY (strategy, trade_id)
        ) WITHOUT ROWID;
        CREATE TABLE trade_instruments (
            instrument TEXT NOT NULL,
            trade_id   INTEGER NOT NULL,
            PRIMARY KEY (instrument, trade_id)
        ) WITHOUT ROWID;
        INSERT INTO trade_users (user, trade_id) SELECT user, trade_id FROM trades;
        INSERT INTO trade_strategies (strategy, trade_id) SELECT strategy, trade_id FROM trades;
        INSERT INTO trade_instruments (instrument, trade_id) SELECT instrument, trade_id FROM trades;
        INSERT INTO meta (key, value) SELECT 'indexed_trade_id', coalesce(max(trade_id), 0) FROM trades WHERE true
            ON CONFLICT (key) DO UPDATE SET value = excluded.value;
        DROP INDEX trades_by_user;
        DROP INDEX trades_by_strategy;
        DROP INDEX trades_by_instrument;
        """,
    ),
    (
        6,
        """
        ALTER TABLE orders ADD COLUMN origin TEXT;
        ALTER TABLE orders ADD COLUMN actor TEXT;
        ALTER TABLE orders ADD COLUMN risk_fingerprint TEXT;
        ALTER TABLE orders ADD COLUMN signal_time TEXT;
        ALTER TABLE control_changes ADD COLUMN reason TEXT;
        ALTER TABLE control_changes ADD COLUMN order_id INTEGER;
        CREATE TABLE risk_sets (
            fingerprint TEXT PRIMARY KEY,
            document    TEXT NOT NULL
        );
        CREATE TABLE risk_changes (
            change_id   INTEGER PRIMARY KEY,
            at          TEXT NOT NULL,
            kind        TEXT NOT NULL CHECK (kind IN ('limits', 'session', 'square_off')),
            level       TEXT,
            target      TEXT,
            change      TEXT NOT NULL,
            changed_by  TEXT,
            fingerprint TEXT NOT NULL REFERENCES risk_sets (fingerprint)
        );
        """,
    ),
    (
        7,
        """
        ALTER TABLE orders ADD COLUMN door TEXT;
        """,
    ),
    (
        8,
        """
        CREATE TABLE fix_sessions (
            counterparty TEXT NOT NULL,
            acceptor     TEXT NOT NULL,
            next_in      INTEGER NOT NULL,
            next_out     INTEGER NOT NULL,
            PRIMARY KEY (counterparty, acceptor)
        ) WITHOUT ROWID;
        CREATE TABLE fix_messages (
            counterparty TEXT NOT NULL,
            acceptor     TEXT NOT NULL,
            seq          INTEGER NOT NULL,
            frame        BLOB NOT NULL,
            PRIMARY KEY (counterparty, acceptor, seq)
        ) WITHOUT ROWID;
        """,
    ),
)
"""Version 3: trading controls (the sets in force, named by fingerprint, and every change made) and,
per order, the controls it was decided under and its hash-chain link (filled in for older orders by
:func:`ordergate.store.sqlite.connection.link_unchained_orders` when the store is opened).

Version 4: an index for every filter of the listings, each in the listing's id order
(:mod:`ordergate.store.queries`): positions and trades by user, strategy and instrument, and a user's
orders through the ``opened_order_id`` of its positions and the ``opened_order_id`` and
``closed_order_id`` of its trades. Each is two short columns appended to in id order within its key,
so an order pays a few B-tree inserts per position it opens or closes; the trades table, which only
grows, is where they cost space.

Version 5: cheaper listing indexes (issue 10). An index costs a commit about one page written per key
it touches (WAL frames, then the checkpoint's copies), whatever the width of its entries: a group of
orders over 50 instruments dirties about one page of ``orders_by_instrument`` per order. Two changes:

- A user's orders were the union of three indexes (``positions_by_user_order``, ``trades_by_user_opened``,
  ``trades_by_user_closed``), touched on every open and close. ``order_users`` replaces them: one row
  ``(user, order_id)`` per user an order applied to, in one B-tree (``WITHOUT ROWID``: the primary key
  is the table), written with the order. The migration fills it from the ``applied`` column of every
  stored order (a row whose ``applied`` is not the JSON array ordergate writes adds nothing; ``verify``
  reports it). The name is that of version 1's table, dropped by version 2: the same shape, back for a
  cheaper reason.
- The orders by strategy and by instrument, and the trades by user, strategy and instrument, move to a
  *side index*: ``order_strategies``, ``order_instruments``, ``trade_users``, ``trade_strategies`` and
  ``trade_instruments``, one ``(name, id)`` B-tree each, filled in bulk from the order log and the
  trades up to the id kept in ``meta`` as ``indexed_order_id`` and ``indexed_trade_id``
  (:func:`~ordergate.store.queries.indexed_up_to`), by the store every few hundred orders
  (:data:`ordergate.store.sqlite.store.INDEX_EVERY`; since 2026-12-06 in a transaction of its own that
  the writer runs between groups, earlier inside a group's) and when it opens. A bulk of
  orders over a few dozen names touches each name's page once, not once per order. A listing by
  those filters walks the side index up to that id and the few rows after it by primary key
  (:mod:`ordergate.store.queries`), in one snapshot, so it sees every committed row.

Positions keep their filter indexes (user, strategy, instrument, each in id order) and their unique key:
the open book changes by deletes as well, which a bulk copy cannot follow.

Version 6: pre-trade risk (SPEC section 10). Per order, how it came in and what it was decided under:
``origin`` (``strategy``, ``flatten``, ``square_off``; ``NULL`` in the orders stored before, which read
as ``strategy``), ``actor`` (the key name, ``anonymous`` or ``risk``), ``risk_fingerprint`` (the risk
policy in force) and ``signal_time``. The new columns are nullable and left ``NULL`` in older rows: the
hash chain covers them only when an order carries one
(:attr:`~ordergate.domain.record.OrderRecord.has_entry_fields`), so every stored link stays valid and
the migration rewrites no row. The risk
policies, named by fingerprint, live in ``risk_sets`` and every change of limits or of the trading
session in ``risk_changes``, as version 3 keeps the trading controls; a ``square_off`` change marks the
day's square-off as done (so it runs once a day, even across restarts). A control change gains its
``reason`` (``BREAKER`` for the circuit breaker's) and the ``order_id`` of the order that caused it,
written in that order's transaction.

Version 7: the door each order came through (SPEC section 11: ``api``, ``legacy``, ``hook``, ``fix``,
``gateway``), nullable and ``NULL`` in older rows, which the hash chain covers only when set, as
version 6's columns: the migration rewrites no row and every stored link stays valid.

Version 8: the FIX acceptor's journal (SPEC section 11, :mod:`ordergate.store.sqlite.fix_journal`): per
FIX session (the counterparty's SenderCompID and ``ORDERGATE``) the next MsgSeqNum expected and the
next to send (``fix_sessions``), and every application message sent, as its frame, by MsgSeqNum
(``fix_messages``), so that a session resumes and answers ResendRequests after a crash."""

_ORDERS_INDEXED, _TRADES_INDEXED = indexed_up_to("order_id"), indexed_up_to("trade_id")

CATCH_UP_ORDERS: tuple[str, ...] = (
    "INSERT OR IGNORE INTO order_users (user, order_id)"
    f" SELECT effect.value ->> 0, orders.order_id FROM orders, {APPLIED_EFFECTS}"
    f" WHERE orders.order_id > {_ORDERS_INDEXED} AND effect.type = 'array' AND typeof(effect.value ->> 0) = 'text'",
    "INSERT OR IGNORE INTO order_strategies (strategy, order_id)"
    f" SELECT strategy, order_id FROM orders WHERE order_id > {_ORDERS_INDEXED}",
    "INSERT OR IGNORE INTO order_instruments (instrument, order_id)"
    f" SELECT instrument, order_id FROM orders WHERE order_id > {_ORDERS_INDEXED}",
    "INSERT INTO meta (key, value) SELECT 'indexed_order_id', coalesce(max(order_id), 0) FROM orders WHERE true"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
)
"""The side index of the order log (a user's orders, the orders by strategy and by instrument) up to the
last order stored, and its mark."""

CATCH_UP_TRADES: tuple[str, ...] = (
    "INSERT OR IGNORE INTO trade_users (user, trade_id)"
    f" SELECT user, trade_id FROM trades WHERE trade_id > {_TRADES_INDEXED}",
    "INSERT OR IGNORE INTO trade_strategies (strategy, trade_id)"
    f" SELECT strategy, trade_id FROM trades WHERE trade_id > {_TRADES_INDEXED}",
    "INSERT OR IGNORE INTO trade_instruments (instrument, trade_id)"
    f" SELECT instrument, trade_id FROM trades WHERE trade_id > {_TRADES_INDEXED}",
    "INSERT INTO meta (key, value) SELECT 'indexed_trade_id', coalesce(max(trade_id), 0) FROM trades WHERE true"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
)
"""The side index of the trades up to the last trade stored, and its mark."""

CATCH_UP = CATCH_UP_ORDERS + CATCH_UP_TRADES
"""The statements that bring the side index up to the last order stored, in the caller's transaction. They
hold whatever the store did before (``OR IGNORE``, the upsert): a missing ``meta`` row is re-made. Since
2026-12-06 the side index also holds ``order_users`` (a user's orders): the rows of the orders after
``indexed_order_id`` come from their ``applied`` column here, in SQL, instead of with each order (a store
of an earlier release has every row already; ``OR IGNORE`` keeps them). Each half has a mark of its own,
so the two may run as transactions of their own (the writer process does, between groups)."""

LATEST_VERSION = MIGRATIONS[-1][0]
