"""Which slot a request gets, and whose cells it starts from: the most prompt reused, the least of
another prompt's cache destroyed, then keeping the busy sequences contiguous."""

from __future__ import annotations

from docker_model.runner.worker.engine import COPY_COST, Placement, choose_placement, count_runs, fragment_cost

FRAGMENT_COST = fragment_cost(None)

EMPTY: list[int] = []


def test_runs_of_consecutive_sequence_ids() -> None:
    assert count_runs(set()) == 0
    assert count_runs({0, 1, 2, 3}) == 1
    assert count_runs({0, 2}) == 2
    assert count_runs({0, 1, 3, 5, 6}) == 3


def test_with_nothing_cached_the_busy_sequences_stay_contiguous() -> None:
    caches = {seq: EMPTY for seq in range(4)}
    assert choose_placement(caches, set(), [1, 2, 3]) == Placement(0)
    assert choose_placement(caches, {1}, [1, 2, 3]) == Placement(0)
    assert choose_placement(caches, {0, 2}, [1, 2, 3]) == Placement(1)
    assert choose_placement(caches, {1, 3}, [1, 2, 3]) == Placement(2)


def test_a_cached_prompt_wins_when_it_saves_more_than_a_split_costs() -> None:
    prompt = list(range(FRAGMENT_COST * 2))
    short, long = prompt[:10], prompt[: FRAGMENT_COST + 20]
    # both contiguous: the longer cache
    assert choose_placement({0: short, 1: EMPTY, 2: prompt[:20], 3: EMPTY}, {1}, prompt) == Placement(2)
    # 10 tokens are not worth a split
    assert choose_placement({0: short, 1: EMPTY, 2: EMPTY, 3: prompt[:20]}, {1}, prompt) == Placement(0)
    # a long cache is worth more than the split, but a copy into a contiguous sequence costs less still
    assert choose_placement({0: short, 1: EMPTY, 2: EMPTY, 3: long}, {1}, prompt) == Placement(2, copy_from=3)
    # unless the contiguous sequence holds another prompt's cache worth keeping
    other = list(range(-FRAGMENT_COST - 50, 0))
    assert choose_placement({0: other, 1: EMPTY, 3: long}, {1}, prompt) == Placement(3)


def test_a_prefix_another_sequence_holds_is_copied_into_a_free_one() -> None:
    system = list(range(1000, 1000 + 4 * COPY_COST))
    mine = [*system, 1, 2, 3]
    theirs = [*system, *range(2 * COPY_COST)]
    # the sequence holding the prefix is busy: copied from it
    assert choose_placement({0: theirs, 1: EMPTY}, {0}, mine) == Placement(1, copy_from=0)
    # it is free, but its own prompt is worth keeping: copied into an empty one rather than overwritten
    assert choose_placement({0: theirs, 1: EMPTY}, set(), mine) == Placement(1, copy_from=0)
    # a short shared prefix is not worth a copy
    short = [*system[: COPY_COST // 2], 5]
    assert choose_placement({0: theirs, 1: EMPTY}, {0}, short) == Placement(1)


def test_a_conversation_returns_to_the_sequence_holding_its_history() -> None:
    system = list(range(1000, 1000 + 4 * COPY_COST))
    first, second = [*system, *range(2 * COPY_COST)], [*system, *range(500, 600)]
    turn = [*first, *range(300, 340)]
    caches = {0: first, 1: second, 2: EMPTY, 3: EMPTY}
    assert choose_placement(caches, set(), turn) == Placement(0)
    # a new client with the same system prompt takes a copy into an empty sequence: nobody's history is lost
    assert choose_placement(caches, set(), [*system, 9]) == Placement(2, copy_from=0)


def test_a_short_reply_splits_the_busy_sequences_rather_than_lose_a_conversations_history() -> None:
    system = list(range(1000, 1400))
    mine, theirs = [*system, *range(60)], [*system, *range(100, 160)]
    turn = [*mine, *range(300, 330)]
    caches = {0: mine, 1: EMPTY, 2: theirs, 3: EMPTY}
    # a long reply: keeping the busy sequences contiguous is worth recomputing 60 tokens and losing 60
    assert choose_placement(caches, {1, 3}, turn, max_tokens=None) == Placement(2)
    # a short one is over before the split costs that much
    assert choose_placement(caches, {1, 3}, turn, max_tokens=32) == Placement(0)
