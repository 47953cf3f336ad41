"""Flatten (SPEC section 10): the orders that close every open position in a scope, for exactly its holders.

A flatten is the gateway's own: no strategy sent it, so it is not decided by the rules of section 2
(a SELL of a strategy would reach every subscriber holding the instrument, not only the scope's). It
is one SELL per (strategy that opened the position, instrument), ACCEPTED and applied to exactly the
users of the scope who hold such a position, ordered by strategy, instrument and user so that the
same book always gives the same orders. ``verify`` checks a stored flatten order by the same
definition (:func:`flatten_decision`): every effect closes an open position its strategy opened.
"""

from __future__ import annotations

from ordergate.domain.book import Book, Position
from ordergate.domain.controls import ControlLevel
from ordergate.domain.model import Action, Decision, Effect, Order, Side, Status


def positions_in_scope(book: Book, level: ControlLevel, target: str | None) -> list[Position]:
    """The open positions a flatten of ``level``/``target`` closes: all, one strategy's (those it
    opened), or one user's."""
    if level is ControlLevel.GLOBAL:
        return list(book)
    if level is ControlLevel.STRATEGY:
        return [p for p in book if p.strategy == target]
    return [p for p in book if p.user == target]


def flatten_orders(positions: list[Position]) -> list[tuple[Order, Decision]]:
    """One ACCEPTED SELL per (strategy, instrument) of ``positions``, closing exactly those positions."""
    by_opener: dict[tuple[str, str], list[str]] = {}
    for position in positions:
        by_opener.setdefault((position.strategy, position.instrument), []).append(position.user)
    orders: list[tuple[Order, Decision]] = []
    for (strategy, instrument), users in sorted(by_opener.items()):
        applied = tuple(Effect(user, Action.CLOSED, strategy) for user in sorted(users))
        orders.append((Order(strategy, instrument, Side.SELL), Decision(Status.ACCEPTED, None, applied, ())))
    return orders


def flatten_decision(order: Order, decision: Decision, book: Book) -> str | None:
    """Why a stored flatten order is not one (``None``: it is): a SELL, ACCEPTED, refusing nobody,
    closing for each of its users an open position that its strategy opened in its instrument."""
    if order.side is not Side.SELL or decision.status is not Status.ACCEPTED or decision.rejected_for:
        return "a flatten order must be an ACCEPTED SELL that refuses nobody"
    held_by = book.holdings(order.strategy, order.instrument)
    for user, action, position_strategy in decision.applied:
        position = held_by(user)
        if action is not Action.CLOSED or position_strategy != order.strategy or position is None:
            return f"its effect for {user} closes no position {order.strategy} opened in {order.instrument}"
        if position.strategy != order.strategy:
            return f"{user}'s {order.instrument} was opened by {position.strategy}, not {order.strategy}"
    return None if decision.applied else "a flatten order closes at least one position"
