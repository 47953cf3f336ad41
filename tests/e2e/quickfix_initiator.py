"""QuickFIX (the C++ engine, through its Python bindings) as the FIX initiator of the interop tests.

QuickFIX is an independent implementation of the FIX session protocol: it validates every message
ordergate sends against its FIX 4.4 data dictionary (``share/quickfix/FIX44.xml`` of the
``quickfix-ssl`` wheel) and would answer a bad one with a Reject, which :class:`Initiator` records.
Its callbacks run on QuickFIX's threads; they only put what they see on queues. The message store
is a file store in the test's folder, so the initiator's own sequence numbers survive a restart of
the gateway, as a real counterparty's do. Without the bindings the tests are skipped on a laptop and
fail under ``CI=true``, where ``make test`` installs them (the ``test`` extra).
"""

from __future__ import annotations

import os
import queue
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SOH = "\x01"
WAIT = 10.0


def require_quickfix() -> Any:
    """The ``quickfix`` module, or skip (fail under CI) naming what is missing."""
    try:
        import quickfix
    except ImportError as exc:
        why = f"the QuickFIX bindings are not installed (pip install -e '.[test]'): {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs QuickFIX for the FIX interop tests: {why}")
        pytest.skip(why)
    return quickfix


def data_dictionary() -> Path:
    """The FIX 4.4 data dictionary the quickfix-ssl wheel installs under ``<prefix>/share/quickfix``."""
    for prefix in (sys.prefix, sys.base_prefix):
        path = Path(prefix) / "share" / "quickfix" / "FIX44.xml"
        if path.exists():
            return path
    pytest.fail("quickfix is installed but its FIX44.xml is not under <prefix>/share/quickfix")


def fields_of(text: str) -> dict[int, str]:
    """A FIX message's fields by tag (the first of each), from its wire form."""
    fields: dict[int, str] = {}
    for part in text.split(SOH):
        tag, _, value = part.partition("=")
        if tag.isdigit():
            fields.setdefault(int(tag), value)
    return fields


@dataclass
class Seen:
    """Everything the initiator's callbacks saw, in order, as field maps."""

    events: queue.Queue[str] = field(default_factory=queue.Queue)
    app: queue.Queue[dict[int, str]] = field(default_factory=queue.Queue)
    admin_in: list[dict[int, str]] = field(default_factory=list)
    admin_out: list[dict[int, str]] = field(default_factory=list)


class Initiator:
    """One QuickFIX initiator session ``SENDER -> ORDERGATE`` on ``port``."""

    def __init__(
        self,
        folder: Path,
        port: int,
        *,
        sender: str,
        password: str | None = None,
        heartbeat: int = 30,
        reset_on_logon: bool = False,
    ) -> None:
        self.fix = require_quickfix()
        self.folder = folder
        self.sender = sender
        self.password = password
        self.seen = Seen()
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "initiator.cfg"
        config.write_text(
            "\n".join(
                [
                    "[DEFAULT]",
                    "ConnectionType=initiator",
                    "ReconnectInterval=1",
                    f"FileStorePath={folder / 'store'}",
                    f"FileLogPath={folder / 'log'}",
                    "StartTime=00:00:00",
                    "EndTime=00:00:00",
                    "UseDataDictionary=Y",
                    f"DataDictionary={data_dictionary()}",
                    f"HeartBtInt={heartbeat}",
                    "SocketConnectHost=127.0.0.1",
                    f"SocketConnectPort={port}",
                    f"ResetOnLogon={'Y' if reset_on_logon else 'N'}",
                    "[SESSION]",
                    "BeginString=FIX.4.4",
                    f"SenderCompID={sender}",
                    "TargetCompID=ORDERGATE",
                    "",
                ]
            )
        )
        self.session_id = self.fix.SessionID("FIX.4.4", sender, "ORDERGATE")
        settings = self.fix.SessionSettings(str(config))
        self._application = _application(self.fix, self)
        self._initiator = self.fix.SocketInitiator(
            self._application, self.fix.FileStoreFactory(settings), settings, self.fix.FileLogFactory(settings)
        )
        self._started = False

    def start(self) -> Initiator:
        self._initiator.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Log out and stop. QuickFIX keeps its sessions in one registry per process, by SessionID, beyond
        a stop: each test uses a SenderCompID of its own (the ``sender`` fixture)."""
        if self._started:
            self._initiator.stop()
            self._started = False

    @property
    def session(self) -> Any:
        return self.fix.Session.lookupSession(self.session_id)

    def wait_event(self, name: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"QuickFIX saw no {name} within {timeout:.0f}s; admin in: {self.seen.admin_in}")
            try:
                if self.seen.events.get(timeout=left) == name:
                    return
            except queue.Empty:
                continue

    def logged_on(self) -> Initiator:
        self.wait_event("logon")
        return self

    def order(
        self,
        client_order_id: str,
        symbol: str,
        side: str = "1",
        account: str | None = None,
        quantity: int = 10,
    ) -> dict[int, str]:
        """Send a NewOrderSingle and return the next application message received (its report)."""
        self.send_order(client_order_id, symbol, side, account, quantity)
        return self.next_app()

    def send_order(
        self, client_order_id: str, symbol: str, side: str = "1", account: str | None = None, quantity: int = 10
    ) -> None:
        fix = self.fix
        message = fix.Message()
        message.getHeader().setField(fix.MsgType(fix.MsgType_NewOrderSingle))
        message.setField(fix.ClOrdID(client_order_id))
        message.setField(fix.Symbol(symbol))
        message.setField(fix.Side(side))
        if account is not None:
            message.setField(fix.Account(account))
        message.setField(fix.OrderQty(quantity))
        message.setField(fix.OrdType(fix.OrdType_MARKET))
        message.setField(fix.TransactTime())
        assert fix.Session.sendToTarget(message, self.session_id)

    def next_app(self, timeout: float = WAIT) -> dict[int, str]:
        try:
            return self.seen.app.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no application message within {timeout:.0f}s; admin in: {self.seen.admin_in}")

    def admin_in_of_type(self, msg_type: str) -> list[dict[int, str]]:
        return [m for m in list(self.seen.admin_in) if m.get(35) == msg_type]

    def rejects_sent(self) -> list[dict[int, str]]:
        """The Rejects QuickFIX sent ordergate: messages it found invalid (there must be none)."""
        return [m for m in list(self.seen.admin_out) if m.get(35) == "3"]


def _application(fix: Any, owner: Initiator) -> Any:
    class Application(fix.Application):  # type: ignore[misc, name-defined]
        def onCreate(self, session_id: Any) -> None:
            return None

        def onLogon(self, session_id: Any) -> None:
            owner.seen.events.put("logon")

        def onLogout(self, session_id: Any) -> None:
            owner.seen.events.put("logout")

        def toAdmin(self, message: Any, session_id: Any) -> None:
            msg_type = fix.MsgType()
            message.getHeader().getField(msg_type)
            if msg_type.getValue() == fix.MsgType_Logon and owner.password is not None:
                message.setField(fix.Password(owner.password))
            owner.seen.admin_out.append(fields_of(message.toString()))

        def fromAdmin(self, message: Any, session_id: Any) -> None:
            owner.seen.admin_in.append(fields_of(message.toString()))

        def toApp(self, message: Any, session_id: Any) -> None:
            return None

        def fromApp(self, message: Any, session_id: Any) -> None:
            owner.seen.app.put(fields_of(message.toString()))

    return Application()
