"""The registry: who subscribes to which strategy, and which instruments each subscriber trades there.

It is built from the original kit's ``user_profile.json`` shape, ``{user: {strategy: [instrument,
...]}}``, already parsed. The instrument list is per user *and* strategy: the generator gives every
subscriber of a strategy the same list, but nothing here assumes it. Problems are reported as a
:class:`ProfileError` carrying the JSON path, so the caller can name file and place in one line.
Nothing that decides depends on the order of the document's keys: the fingerprint is taken over a
canonical form, and a strategy's subscribers are listed by user name (SPEC section 3).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import orjson

from ordergate.domain.names import name_problem, shown


class ProfileError(ValueError):
    """A profile document of the wrong shape; ``path`` is a JSONPath such as ``$["Ann"]["S1"][2]``."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class Subscription(NamedTuple):
    """One subscriber of a strategy and the instruments that subscriber trades under it."""

    user: str
    instruments: frozenset[str]


def json_path(*keys: str | int) -> str:
    """Render a JSONPath the way jq and most tools print it: ``$["a"][0]``.

    A key that is not a valid name is shown with its hidden characters escaped (``$["S\\u200b1"]``),
    so the one-line message that names it is one line and shows what is wrong.
    """
    parts = ["$"]
    for key in keys:
        parts.append(f"[{key}]" if isinstance(key, int) else f"[{_quoted(key)}]")
    return "".join(parts)


def _quoted(key: str) -> str:
    try:
        return shown(orjson.dumps(key).decode())
    except orjson.JSONEncodeError:  # a lone surrogate, which UTF-8 cannot carry
        return json.dumps(key)


class Registry:
    """Immutable view of the profiles, indexed by strategy for the decision's fan-out."""

    __slots__ = ("_by_strategy", "_profiles", "fingerprint")

    def __init__(self, profiles: Mapping[str, Mapping[str, frozenset[str]]]) -> None:
        self._profiles = profiles
        by_strategy: dict[str, list[Subscription]] = {}
        for user, strategies in profiles.items():
            for strategy, instruments in strategies.items():
                by_strategy.setdefault(strategy, []).append(Subscription(user, instruments))
        # by user, not file order: a decision lists its effects in this order, and it must be a function
        # of the profiles' content alone (a re-ordered file keeps its fingerprint, and the store the
        # document first recorded under it, which verify decides against)
        self._by_strategy = {strategy: tuple(sorted(subs, key=_by_user)) for strategy, subs in by_strategy.items()}
        self.fingerprint = fingerprint_of(profiles)

    @classmethod
    def from_document(cls, document: object) -> Registry:
        """Validate a parsed ``user_profile.json`` and build the registry, or raise :class:`ProfileError`."""
        if not isinstance(document, dict):
            raise ProfileError("$", f"must be an object of users, not {json_type(document)}")
        interned: dict[frozenset[str], frozenset[str]] = {}
        valid_instruments: set[str] = set()  # 100,000 users share a few hundred names: check each once
        profiles: dict[str, dict[str, frozenset[str]]] = {}
        for user, strategies in document.items():
            _check_name(user, "user name", user)
            if not isinstance(strategies, dict):
                raise ProfileError(json_path(user), f"must be an object of strategies, not {json_type(strategies)}")
            profile: dict[str, frozenset[str]] = {}
            for strategy, instruments in strategies.items():
                _check_name(strategy, "strategy name", user, strategy)
                if not isinstance(instruments, list):
                    raise ProfileError(
                        json_path(user, strategy),
                        f"must be a list of instruments, not {json_type(instruments)}",
                    )
                try:
                    traded: frozenset[str] | None = frozenset(instruments)
                except TypeError:  # an unhashable item: the check below names it
                    traded = None
                if traded is None or not traded <= valid_instruments:  # only checked names are in there
                    for index, instrument in enumerate(instruments):
                        problem = name_problem(instrument)
                        if problem is not None:
                            raise ProfileError(json_path(user, strategy, index), f"instrument name {problem}")
                    traded = frozenset(instruments)
                    valid_instruments |= traded
                profile[strategy] = interned.setdefault(traded, traded)
            profiles[user] = profile
        return cls(profiles)

    def subscribers(self, strategy: str) -> tuple[Subscription, ...]:
        """The subscribers of ``strategy``, sorted by user name (whatever the order of the document)."""
        return self._by_strategy.get(strategy, ())

    def is_subscribed(self, user: str, strategy: str) -> bool:
        return strategy in self._profiles.get(user, {})

    @property
    def users(self) -> list[str]:
        return list(self._profiles)

    @property
    def strategies(self) -> list[str]:
        return list(self._by_strategy)

    def profiles(self) -> Mapping[str, Mapping[str, frozenset[str]]]:
        return self._profiles

    def to_document(self) -> dict[str, dict[str, list[str]]]:
        """The canonical JSON form (sorted instrument lists); what the fingerprint is taken over."""
        return _canonical(self._profiles)

    def __iter__(self) -> Iterator[str]:
        return iter(self._profiles)


def _by_user(subscription: Subscription) -> str:
    return subscription.user


def fingerprint_of(profiles: Mapping[str, Mapping[str, frozenset[str]]]) -> str:
    """A short, stable digest of the profiles: equal profiles give equal fingerprints, in any key order."""
    canonical = orjson.dumps(_canonical(profiles), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


def _canonical(profiles: Mapping[str, Mapping[str, frozenset[str]]]) -> dict[str, dict[str, list[str]]]:
    ordered: dict[frozenset[str], list[str]] = {}  # subscribers share lists: sort each distinct one once

    def sort(instruments: frozenset[str]) -> list[str]:
        found = ordered.get(instruments)
        if found is None:
            found = ordered[instruments] = sorted(instruments)
        return found

    return {user: {strategy: sort(i) for strategy, i in strategies.items()} for user, strategies in profiles.items()}


def _check_name(value: str, what: str, *keys: str) -> None:
    problem = name_problem(value)
    if problem is not None:
        raise ProfileError(json_path(*keys), f"{what} {problem}")


def json_type(value: object) -> str:
    """How a JSON value is named in error messages: 'a list', 'null', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
