"""Generated profiles: the kit's shape, reproducible by seed, scaling to 100k users, written atomically."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from ordergate.domain.registry import Registry
from ordergate.tools.catalogue import Catalogue, default_catalogue_path, load_catalogue
from ordergate.tools.generate import generate_profiles, write_profiles


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(default_catalogue_path())


def test_same_seed_gives_the_same_profiles(catalogue: Catalogue) -> None:
    first = generate_profiles(catalogue, 25, seed=7)
    second = generate_profiles(catalogue, 25, seed=7)

    assert first == second
    assert list(first) == list(second)


def test_different_seeds_give_different_profiles(catalogue: Catalogue) -> None:
    assert generate_profiles(catalogue, 25, seed=1) != generate_profiles(catalogue, 25, seed=2)


def test_each_user_has_one_to_seven_strategies_of_one_to_ten_catalogue_instruments(
    catalogue: Catalogue,
) -> None:
    profiles = generate_profiles(catalogue, 40, seed=3)

    for strategies in profiles.values():
        assert 1 <= len(strategies) <= 7
        assert set(strategies) <= set(catalogue.strategies)
        for instruments in strategies.values():
            assert 1 <= len(instruments) <= 10
            assert len(set(instruments)) == len(instruments)
            assert set(instruments) <= set(catalogue.instruments)


def test_every_subscriber_of_a_strategy_gets_the_same_instrument_list(catalogue: Catalogue) -> None:
    lists_by_strategy: dict[str, set[tuple[str, ...]]] = defaultdict(set)

    for strategies in generate_profiles(catalogue, 40, seed=4).values():
        for strategy, instruments in strategies.items():
            lists_by_strategy[strategy].add(tuple(instruments))

    assert all(len(lists) == 1 for lists in lists_by_strategy.values())


def test_subscribers_do_not_share_one_mutable_list(catalogue: Catalogue) -> None:
    profiles = generate_profiles(catalogue, 40, seed=5)
    holders = [user for user, strategies in profiles.items() if "STRATEGY_A" in strategies]
    assert len(holders) >= 2

    profiles[holders[0]]["STRATEGY_A"].append("CHANGED")

    assert "CHANGED" not in profiles[holders[1]]["STRATEGY_A"]


def test_users_are_distinct_catalogue_names_while_the_catalogue_suffices(catalogue: Catalogue) -> None:
    profiles = generate_profiles(catalogue, len(catalogue.users), seed=6)

    assert sorted(profiles) == sorted(catalogue.users)


def test_strategy_and_instrument_counts_are_capped_by_a_small_catalogue() -> None:
    small = Catalogue(users=("Ann", "Bo"), strategies=("S1", "S2"), instruments=("ACC", "L&T", "M&M"))

    for strategies in generate_profiles(small, 200, seed=8).values():
        assert 1 <= len(strategies) <= 2
        assert all(1 <= len(instruments) <= 3 for instruments in strategies.values())


def test_hundred_thousand_users_get_distinct_names_including_synthetic_ones(catalogue: Catalogue) -> None:
    profiles = generate_profiles(catalogue, 100_000, seed=9)

    assert len(profiles) == 100_000
    assert set(catalogue.users) <= set(profiles)
    assert f"User {len(catalogue.users) + 1:06d}" in profiles
    assert "User 100000" in profiles


def test_synthetic_names_never_collide_with_catalogue_names() -> None:
    tricky = Catalogue(users=("Ann", "User 000003"), strategies=("S1",), instruments=("ACC",))

    profiles = generate_profiles(tricky, 5, seed=10)

    assert sorted(profiles) == ["Ann", "User 000003", "User 000004", "User 000005", "User 000006"]


def test_generated_profiles_load_as_a_registry(catalogue: Catalogue) -> None:
    profiles = generate_profiles(catalogue, 2_000, seed=11)

    registry = Registry.from_document(profiles)

    assert len(registry.users) == 2_000


@pytest.mark.parametrize("users", [0, -3])
def test_fewer_than_one_user_is_refused(catalogue: Catalogue, users: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_profiles(catalogue, users, seed=None)


def test_unseeded_generation_still_follows_the_rules(catalogue: Catalogue) -> None:
    profiles = generate_profiles(catalogue, 3, seed=None)

    assert len(profiles) == 3
    assert all(1 <= len(strategies) <= 7 for strategies in profiles.values())


def test_written_profiles_read_back_equal_and_small_files_are_indented(tmp_path: Path, catalogue: Catalogue) -> None:
    profiles = generate_profiles(catalogue, 3, seed=12)
    path = tmp_path / "Jsons" / "user_profile.json"

    write_profiles(profiles, path)

    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == profiles
    assert text.startswith('{\n  "')


def test_large_profile_files_are_compact(tmp_path: Path, catalogue: Catalogue) -> None:
    profiles = generate_profiles(catalogue, 1_001, seed=13)
    path = tmp_path / "user_profile.json"

    write_profiles(profiles, path)

    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == profiles
    assert text.count("\n") == 1


def test_writing_replaces_the_old_file_and_leaves_no_temporary_file(tmp_path: Path, catalogue: Catalogue) -> None:
    path = tmp_path / "user_profile.json"
    path.write_text("old", encoding="utf-8")

    write_profiles(generate_profiles(catalogue, 2, seed=14), path)

    assert json.loads(path.read_text(encoding="utf-8")) == generate_profiles(catalogue, 2, seed=14)
    assert [entry.name for entry in tmp_path.iterdir()] == ["user_profile.json"]


def test_names_with_ampersands_survive_writing(tmp_path: Path) -> None:
    profiles = {"Ann": {"S1": ["L&T", "M&M"]}}
    path = tmp_path / "user_profile.json"

    write_profiles(profiles, path)

    assert json.loads(path.read_text(encoding="utf-8")) == profiles
