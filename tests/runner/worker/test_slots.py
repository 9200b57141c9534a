"""Which slot a request gets: its cached prompt first, then keeping the busy sequences contiguous."""

from __future__ import annotations

from docker_model.runner.worker.engine import FRAGMENT_COST, choose_slot, count_runs


def test_runs_of_consecutive_sequence_ids() -> None:
    assert count_runs(set()) == 0
    assert count_runs({0, 1, 2, 3}) == 1
    assert count_runs({0, 2}) == 2
    assert count_runs({0, 1, 3, 5, 6}) == 3


def test_with_nothing_cached_the_busy_sequences_stay_contiguous() -> None:
    empty: list[int] = []
    assert choose_slot({0: empty, 1: empty, 2: empty, 3: empty}, set(), [1, 2, 3]) == 0
    assert choose_slot({0: empty, 2: empty, 3: empty}, {1}, [1, 2, 3]) == 0
    assert choose_slot({1: empty, 3: empty}, {0, 2}, [1, 2, 3]) == 1
    assert choose_slot({0: empty, 2: empty}, {1, 3}, [1, 2, 3]) == 2


def test_a_cached_prompt_wins_when_it_saves_more_than_a_split_costs() -> None:
    prompt = list(range(FRAGMENT_COST * 2))
    short, long = prompt[:10], prompt[: FRAGMENT_COST + 20]
    assert choose_slot({0: short, 2: prompt[:20]}, {1}, prompt) == 2  # both contiguous: the longer cache
    assert choose_slot({0: short, 3: prompt[:20]}, {1}, prompt) == 0  # 10 tokens are not worth a split
    assert choose_slot({0: short, 3: long}, {1}, prompt) == 3
