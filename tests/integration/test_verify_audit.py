"""``ordergate verify`` as an audit (SPEC sections 3 and 9): it passes across a harmless re-ordering of
the profile file, on logs written before decisions were sorted too, and it fails (exit 1, naming the
order) on everything it cannot vouch for: a missing or unreadable profiles or controls document, and a
stored row whose values were altered into something no ordergate writes."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from ordergate.cli import app
from ordergate.domain.book import Position
from ordergate.domain.chain import Chains, single_chain
from ordergate.domain.model import Action, Decision, Effect, Order, Scope, Side, Status
from ordergate.domain.record import OrderRecord
from ordergate.domain.registry import Registry
from ordergate.store.sqlite import SQLiteLogReader, SQLiteStore
from tests.conftest import write_home
from tests.integration.conftest import running_gateway
from tests.postgres import fresh_database

pytestmark = pytest.mark.anyio
runner = CliRunner()

PROFILES = {
    "Zoe": {"S1": ["ACC", "TCS"], "S2": ["INFY"]},
    "Amy": {"S2": ["INFY"], "S1": ["TCS", "ACC"]},
    "Max": {"S1": ["ACC"]},
}
REORDERED = {  # the same content: users, strategies and instruments each in the opposite order
    user: {strategy: instruments[::-1] for strategy, instruments in reversed(strategies.items())}
    for user, strategies in reversed(PROFILES.items())
}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """``None`` for the SQLite store of the home, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database() as url:
        yield url


def where(home: Path, db: str | None) -> list[str]:
    return ["--home", str(home)] if db is None else ["--db", db]


def verify(home: Path, db: str | None = None, *more: str) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", *where(home, db), *more])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join((result.stdout + result.stderr).split())


def execute(home: Path, db: str | None, *statements: str) -> None:
    """Real SQL on the store, as someone with access to the database would alter it."""
    if db is None:
        with sqlite3.connect(home / "data" / "ordergate.sqlite3") as conn:
            for statement in statements:
                conn.execute(statement)
        return
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


async def send(client: httpx.AsyncClient, strategy: str, instrument: str, side: str) -> dict[str, Any]:
    response = await client.post("/v1/orders", json={"strategy": strategy, "instrument": instrument, "side": side})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def users(answer: dict[str, Any]) -> list[str]:
    return [a["user"] for a in answer["applied"]]


# -- defect 4: re-ordering the profile file changes no decision ------------------------------------


async def test_verify_passes_across_a_reload_and_a_restart_with_the_profile_keys_reordered(
    tmp_path: Path, store: str | None
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    settings = {} if store is None else {"db": store}
    async with running_gateway(home, **settings) as (client, _):
        assert users(await send(client, "S1", "ACC", "BUY")) == ["Amy", "Max", "Zoe"]
        tcs = await send(client, "S1", "TCS", "BUY")
        assert users(tcs) == ["Amy", "Zoe"]
        assert [r["user"] for r in tcs["rejected_for"]] == ["Max"]
        write_home(home, REORDERED)
        reloaded = await client.post("/v1/admin/reload-profiles")
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["fingerprint"] == reloaded.json()["previous_fingerprint"]
        assert users(await send(client, "S2", "INFY", "BUY")) == ["Amy", "Zoe"]
    async with running_gateway(home, **settings) as (client, _):  # a restart reads the re-ordered file
        assert users(await send(client, "S1", "ACC", "SELL")) == ["Amy", "Max", "Zoe"]
        assert users(await send(client, "S1", "TCS", "SELL")) == ["Amy", "Zoe"]
        assert users(await send(client, "S1", "ACC", "BUY")) == ["Amy", "Max", "Zoe"]
    code, output = verify(home, store)
    assert code == 0, output
    assert "ok: 6 orders" in output
    assert "(6 decisions re-derived" in output


async def test_verify_passes_on_a_log_whose_effects_follow_the_file_order(tmp_path: Path) -> None:
    """A log written before subscribers were sorted keeps its effects in the profile file's order."""
    home = write_home(tmp_path / "home", {"Zoe": {"S1": ["ACC"]}, "Amy": {"S1": ["ACC"]}})
    registry = Registry.from_document(orjson.loads((home / "Jsons" / "user_profile.json").read_bytes()))
    at = "2026-01-01T00:00:01.000000Z"
    in_file_order = (Effect("Zoe", Action.OPENED, "S1"), Effect("Amy", Action.OPENED, "S1"))
    store = SQLiteStore(home / "data" / "ordergate.sqlite3")
    await store.open(Scope.ACCOUNT)
    await store.record_profiles(registry.fingerprint, orjson.dumps(registry.to_document()).decode())
    await store.commit(
        [
            OrderRecord(
                order_id=1,
                received_at=at,
                order=Order("S1", "ACC", Side.BUY),
                decision=Decision(Status.ACCEPTED, None, in_file_order, ()),
                scope=Scope.ACCOUNT,
                profile_fingerprint=registry.fingerprint,
                client_order_id=None,
                opened=tuple(Position(e.user, "S1", "ACC", 1, at) for e in in_file_order),
            )
        ]
    )
    await store.close()
    code, output = verify(home)
    assert code == 0, output
    assert "(1 decisions re-derived" in output
    async with running_gateway(home) as (client, _):  # decided now: sorted, and still the same decision
        assert users(await send(client, "S1", "ACC", "SELL")) == ["Amy", "Zoe"]
    assert verify(home)[0] == 0


def test_reordered_fixture_is_the_same_content_in_another_order() -> None:
    assert Registry.from_document(PROFILES).fingerprint == Registry.from_document(REORDERED).fingerprint
    assert list(REORDERED) == ["Max", "Amy", "Zoe"]
    assert orjson.dumps(PROFILES) != orjson.dumps(REORDERED)


# -- defect 5: what verify cannot vouch for is a difference, never a silent skip ------------------


async def fill(home: Path, db: str | None) -> None:
    """Four orders; a control on Max is set before order 3, so orders 3 and 4 name controls."""
    settings = {} if db is None else {"db": db}
    async with running_gateway(home, **settings) as (client, _):
        await send(client, "S1", "ACC", "BUY")  # 1: Amy, Max, Zoe
        await send(client, "S1", "TCS", "BUY")  # 2: Amy, Zoe; Max does not trade TCS
        response = await client.put("/v1/controls", json={"level": "user", "target": "Max", "state": "HALTED"})
        assert response.status_code == 200, response.text
        await send(client, "S1", "ACC", "SELL")  # 3: Amy, Zoe; Max HALTED
        await send(client, "S2", "INFY", "BUY")  # 4: Amy, Zoe


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("DELETE FROM profiles", "are missing from the store, so its decision cannot be derived again"),
        ("UPDATE profiles SET document = 'not json'", "cannot be read from the store: not JSON"),
        (
            """UPDATE profiles SET document = '{"Zoe": {"S1": "ACC"}}'""",
            'cannot be read from the store: $["Zoe"]["S1"]: must be a list of instruments, not a string',
        ),
        (
            """UPDATE profiles SET document = '{"Zoe": {"S1": ["ACC", "TCS"]}}'""",
            "were altered in the store: the document there has fingerprint",
        ),
    ],
    ids=["missing", "not-json", "wrong-shape", "other-profiles"],
)
async def test_verify_fails_naming_the_first_order_whose_profiles_it_cannot_use(
    tmp_path: Path, store: str | None, tamper: str, problem: str
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    await fill(home, store)
    assert verify(home, store)[0] == 0
    execute(home, store, tamper)
    code, output = verify(home, store)
    assert code == 1, output
    fingerprint = Registry.from_document(PROFILES).fingerprint
    assert (
        f"verify failed: order 1: the profiles it was decided against (fingerprint {fingerprint}) {problem}" in output
    )


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("DELETE FROM controls_sets", "are missing from the store, so its decision cannot be derived again"),
        (
            """UPDATE controls_sets SET document = '{"global": "PAUSED"}'""",
            "cannot be read from the store: 'PAUSED' is not a valid ControlState",
        ),
        ("""UPDATE controls_sets SET document = '{"global": "HALTED"}'""", "were altered in the store"),
    ],
    ids=["missing", "unreadable", "other-controls"],
)
async def test_verify_fails_naming_the_first_order_whose_controls_it_cannot_use(
    tmp_path: Path, store: str | None, tamper: str, problem: str
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    await fill(home, store)
    assert verify(home, store)[0] == 0
    execute(home, store, "DELETE FROM control_changes", tamper)
    code, output = verify(home, store)
    assert code == 1, output
    assert "verify failed: order 3: the trading controls it was decided under (fingerprint " in output
    assert problem in output


def check_constraint_off(db: str | None, column: str) -> str:
    """The statement that lets an UPDATE put a value the schema's CHECK refuses (both engines have one)."""
    if db is None:
        return "PRAGMA ignore_check_constraints = ON"
    return f"ALTER TABLE orders DROP CONSTRAINT orders_{column}_check"


TAMPERED_ROWS = [
    ("side", "side = 'HOLD'", "holds 'HOLD', not one of BUY, SELL"),
    ("status", "status = 'MAYBE'", "holds 'MAYBE', not one of ACCEPTED, REJECTED"),
    ("reason", "reason = 'BECAUSE'", "holds 'BECAUSE', not one of UNKNOWN_STRATEGY, INSTRUMENT_NOT_TRADED"),
    ("applied", """applied = '[["Amy", "EXPLODED", "S1"]]'""", "holds 'EXPLODED', not one of OPENED, CLOSED"),
    ("applied", """applied = '[["Amy", "OPENED"'""", """holds '[["Amy", "OPENED"', not valid JSON"""),
    ("applied", """applied = '{"Amy": 1}'""", """holds '{"Amy": 1}', not a JSON array"""),
    (
        "applied",
        """applied = '[["Amy", "OPENED"]]'""",
        "item 0 is ['Amy', 'OPENED'], not [user, action, position_strategy]",
    ),
    ("rejected_for", """rejected_for = '[["Max", "NOPE"]]'""", "holds 'NOPE', not one of UNKNOWN_STRATEGY"),
]


@pytest.mark.parametrize(
    ("column", "assignment", "problem"),
    TAMPERED_ROWS,
    ids=["side", "status", "reason", "action", "malformed-json", "not-an-array", "short-effect", "refusal-reason"],
)
async def test_verify_reports_an_altered_value_as_the_first_difference_naming_order_and_column(
    tmp_path: Path, store: str | None, column: str, assignment: str, problem: str
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    await fill(home, store)
    statements = [f"UPDATE orders SET {assignment} WHERE order_id = 2"]
    if column in ("side", "status"):
        statements.insert(0, check_constraint_off(store, column))
    execute(home, store, *statements)
    code, output = verify(home, store)
    assert code == 1, output
    assert f"verify failed: order 2: the stored row was altered: column {column} {problem}" in output


async def test_verify_reports_a_blob_where_sqlite_keeps_text(tmp_path: Path) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    await fill(home, None)
    execute(home, None, "UPDATE orders SET strategy = CAST('S1' AS BLOB) WHERE order_id = 3")
    code, output = verify(home)
    assert code == 1, output
    assert "verify failed: order 3: the stored row was altered: column strategy holds b'S1', not text" in output


async def test_the_verify_command_exits_1_with_one_line_and_no_traceback_on_an_altered_row(
    tmp_path: Path, store: str | None
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    await fill(home, store)
    execute(home, store, check_constraint_off(store, "side"), "UPDATE orders SET side = 'HOLD' WHERE order_id = 4")
    command = [sys.executable, "-m", "ordergate", "verify", *where(home, store)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "verify failed: order 4: the stored row was altered: column side holds 'HOLD', not one of BUY, SELL"
    ]


async def test_api_reads_leave_an_altered_row_out_of_listings_and_answer_409_for_it(
    tmp_path: Path, store: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    await fill(home, store)
    execute(home, store, check_constraint_off(store, "side"), "UPDATE orders SET side = 'HOLD' WHERE order_id = 2")
    settings = {} if store is None else {"db": store}
    caplog.set_level(logging.ERROR, logger="ordergate.store.codec")
    async with running_gateway(home, **settings) as (client, _):
        listing = await client.get("/v1/orders")
        assert listing.status_code == 200, listing.text
        assert [o["order_id"] for o in listing.json()["items"]] == [1, 3, 4]
        first = (await client.get("/v1/orders", params={"limit": 1, "after": 1})).json()
        assert (first["items"], first["next"]) == ([], 2)  # paging goes on past it
        assert [o["order_id"] for o in (await client.get("/v1/orders", params={"after": 2})).json()["items"]] == [3, 4]
        one = await client.get("/v1/orders/2")
        assert one.status_code == 409, one.text
        assert "order 2: column side holds 'HOLD'" in one.json()["detail"]
        assert "ordergate verify" in one.json()["detail"]
        stats = await client.get("/v1/stats")
        assert stats.status_code == 200, stats.text
        assert stats.json()["orders"] == 3  # the altered order is left out of the counters
        # order entry goes on
        assert (await send(client, "S1", "ACC", "BUY"))["status"] == "ACCEPTED"
    assert "order 2: column side holds 'HOLD', not one of BUY, SELL" in caplog.text


async def test_export_stops_at_an_altered_row_naming_it(tmp_path: Path, store: str | None) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    await fill(home, store)
    execute(home, store, """UPDATE orders SET applied = '[["Amy", "EXPLODED", "S1"]]' WHERE order_id = 2""")
    output = tmp_path / "orders.jsonl"
    result = runner.invoke(app, ["export", *where(home, store), "--what", "orders", "--output", str(output)])
    assert result.exit_code == 2, result.output
    assert " ".join(result.stderr.split()) == (
        "error: export stopped at an altered row (order 2: column applied holds 'EXPLODED', not one of OPENED, "
        "CLOSED): ordergate verify reports it; the output is incomplete"
    )
    assert [orjson.loads(line)["order_id"] for line in output.read_text().splitlines()] == [1]


# -- verify --until: an anchor written down earlier, checked later --------------------------------


def anchor_of(output: str, order_id: int) -> str:
    marker = f"hash chain intact through order {order_id}; anchor (a digest of every chain head): "
    assert marker in output, output
    return output.split(marker, 1)[1].split()[0]


async def test_an_anchor_written_down_earlier_is_printed_again_by_verify_until_that_order(
    tmp_path: Path, store: str | None
) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    await fill(home, store)
    code, output = verify(home, store)
    assert code == 0, output
    written_down = anchor_of(output, 4)
    settings = {} if store is None else {"db": store}
    async with running_gateway(home, **settings) as (client, _):  # the log grows: the anchor moves
        await send(client, "S2", "INFY", "SELL")
        await send(client, "S1", "TCS", "SELL")
    code, output = verify(home, store)
    assert code == 0, output
    assert anchor_of(output, 6) != written_down
    code, output = verify(home, store, "--until", "4")
    assert code == 0, output
    assert "ok: the 4 orders up to order 4 replay (4 decisions re-derived" in output
    assert "were not compared" in output
    assert anchor_of(output, 4) == written_down
    code, output = verify(home, store, "--until", "2")
    assert code == 0, output
    assert anchor_of(output, 2) != written_down


async def test_verify_until_an_order_that_is_gone_fails(tmp_path: Path, store: str | None) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    await fill(home, store)
    code, output = verify(home, store, "--until", "4")
    assert code == 0, output
    # the last orders removed (with what they did to the book): the chain that is left is intact
    execute(home, store, "DELETE FROM orders WHERE order_id >= 3")
    code, output = verify(home, store, "--until", "4")
    assert code == 1, output
    assert "verify failed: order 4 is not in the log (the last order up to it is 2)" in output
    code, output = verify(home, store, "--until", "9")
    assert code == 1, output
    assert "order 9 is not in the log" in output


async def test_a_log_rewritten_as_a_whole_verifies_but_no_longer_gives_the_anchor_written_down(tmp_path: Path) -> None:
    home = write_home(tmp_path / "home", PROFILES)
    await fill(home, None)
    written_down = anchor_of(verify(home)[1], 4)
    path = home / "data" / "ordergate.sqlite3"
    reader = SQLiteLogReader(path)
    records = [r for r in reader.iter_orders() if isinstance(r, OrderRecord)]
    reader.close()
    chains = Chains(single_chain)
    with sqlite3.connect(path) as db:  # order 2 back-dated, and every link after it computed again
        for record in records:
            if record.order_id == 2:
                record = record._replace(received_at="2020-01-01T00:00:00.000000Z")
                db.execute("UPDATE orders SET received_at = ? WHERE order_id = 2", (record.received_at,))
                db.execute("UPDATE positions SET opened_at = ? WHERE opened_order_id = 2", (record.received_at,))
            db.execute("UPDATE orders SET chain_hash = ? WHERE order_id = ?", (chains.link(record), record.order_id))
    code, output = verify(home)
    assert code == 0, output  # nothing in the store tells: only the anchor kept elsewhere does
    assert anchor_of(output, 4) != written_down
    assert anchor_of(verify(home, None, "--until", "4")[1], 4) != written_down


def test_verify_until_takes_an_order_id(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", "--home", str(tmp_path), "--until", "0"])
    assert result.exit_code == 2
    assert "Invalid value for '--until': Input should be greater than or equal to 1" in " ".join(result.stderr.split())
