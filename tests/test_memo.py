"""The one memo type: bounded, emptied when full, and consistent when threads share it."""

from __future__ import annotations

import threading
import time

import pytest

from gate.memo import Memo


def test_bounded_by_entries_and_emptied_when_full() -> None:
    memo: Memo[int, int] = Memo(3)
    for key in range(3):
        assert memo.get_or_make(key, lambda k=key: k * 10) == key * 10  # type: ignore[misc]
    assert len(memo) == 3 and memo.get_or_make(0, lambda: -1) == 0  # kept: not made again
    memo.put(3, 30)
    assert len(memo) == 1 and 3 in memo and 0 not in memo
    memo.put(3, 31)  # replacing an entry does not count it twice
    assert len(memo) == 1 and memo.pop(3) == 31 and memo.pop(3) is None and len(memo) == 0


def test_a_none_value_is_kept() -> None:
    memo: Memo[str, int | None] = Memo(2)
    made: list[str] = []
    for _ in range(3):
        assert memo.get_or_make("x", lambda: made.append("x")) is None
    assert made == ["x"]


def test_bounded_by_weight() -> None:
    memo: Memo[str, str] = Memo(10, weight=lambda key, _: len(key))
    memo.put("aaaa", "1")
    memo.put("bbbb", "2")
    assert len(memo) == 2
    memo.put("cccc", "3")  # 12 > 10: emptied first
    assert len(memo) == 1 and "cccc" in memo
    memo.put("x" * 11, "4")  # heavier than the whole bound: not kept
    assert "x" * 11 not in memo and len(memo) == 1
    assert memo.pop("cccc") == "3"
    memo.put("dddddddddd", "5")  # the weight taken out by pop is free again
    assert len(memo) == 1


def test_rejects_an_empty_bound() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        Memo(0)


def test_threads_hammering_one_memo_see_only_right_values_and_it_stays_bounded() -> None:
    def weight(key: int, _: int) -> int:
        time.sleep(0)  # yields to the other threads in the middle of a put: a race there would show
        return 1 + key % 3

    memo: Memo[int, int] = Memo(50, weight=weight)
    wrong: list[tuple[int, int]] = []
    sizes: list[int] = []
    start = threading.Barrier(8)

    def work(seed: int) -> None:
        start.wait()
        for i in range(2_000):
            key = (i * 7919 + seed * 104_729) % 400
            value = memo.get_or_make(key, lambda k=key: k * k)  # type: ignore[misc]
            if value != key * key:
                wrong.append((key, value))
            if i % 5 == 0:
                memo.put(key, key * key)
            if i % 11 == 0:
                popped = memo.pop(key)
                if popped is not None and popped != key * key:
                    wrong.append((key, popped))
            sizes.append(len(memo))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads)
    assert wrong == []
    assert sizes and max(sizes) <= 50
    assert memo._total == sum(1 + key % 3 for key in list(memo._entries)) <= 50  # the weights add up
