"""The SQLite schema as forward-only migrations; the version lives in ``PRAGMA user_version``.

Never edit a migration that has shipped: add the next one. Each runs in its own transaction.
"""

from __future__ import annotations

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
it touches (WAL frames, then the checkpoint's copies), whatever the width of its entries, so what
counts is how many user-keyed indexes each effect lands in. A user's orders were the union of three of
them (``positions_by_user_order``, ``trades_by_user_opened``, ``trades_by_user_closed``), touched on
every open and close (a close: a delete and two inserts). ``order_users`` replaces all three: one row
``(user, order_id)`` per user an order applied to, in one B-tree (``WITHOUT ROWID``, the primary key is
the index), written with the order. The migration fills it from the ``applied`` column of every
stored order (a row whose ``applied`` is not the JSON array ordergate writes adds nothing; ``verify``
reports it) and drops the three indexes. Each effect now pays one user-keyed entry for the order plus
the position's or trade's own; positions and trades keep their filter indexes (user, strategy,
instrument, each in id order) and the unique key. The name ``order_users`` is that of the table of
version 1 dropped by version 2: the same shape, back for a cheaper reason."""

LATEST_VERSION = MIGRATIONS[-1][0]
