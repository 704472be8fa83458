"""The cache's stepping aside, probe by probe (NOTE [ A cache that steps aside ] in data/store/cache.py).

Each test sets a tiny window of probed reads (4, come back at half of them
hitting) and a cache that has already stepped aside, then follows the rule by hand: a probed
key hits when an earlier probe within ``capacity // len(keys)`` probes read it.
"""

from __future__ import annotations

import numpy as np
import pytest

from mixweave.data.store.cache import SlotCache


def stepped_aside(capacity: int, probe: int = 1, size: int = 100) -> SlotCache:
    cache = SlotCache(capacity, size)
    cache.PROBE_WINDOW, cache.LOW, cache.PROBE = 4, 0.5, probe
    cache.bypassed = True
    return cache


def test_keys_that_come_back_within_reach_bring_the_cache_back():
    cache = stepped_aside(capacity=4)  # reach 4 // 2 = 2 probes
    assert cache.use([1, 2]) is False  # first probe: nothing seen before
    assert cache.use(np.array([1, 2])) is False  # both seen one probe ago: 2 hits of 4 reads, the window is done
    assert cache.bypassed is False
    assert cache.use([7, 8]) is True


def test_keys_seen_beyond_reach_are_misses():
    cache = stepped_aside(capacity=2)  # reach 2 // 2 = 1 probe: only the previous one counts
    cache.use([1, 2])
    cache.use([3, 4])  # window: 0 hits of 4, stays aside
    cache.use([1, 2])  # seen two probes ago: misses
    assert cache.bypassed
    cache.use([1, 2])  # seen one probe ago: 2 hits of 4 in this window
    assert not cache.bypassed


def test_a_key_repeated_within_one_probe_is_not_its_own_hit():
    cache = stepped_aside(capacity=8)
    cache.use([5, 5, 5, 5])  # 4 reads of one new key: 0 hits (3 would bring it back)
    assert cache.bypassed
    cache.use([5, 6, 6, 6])  # 5 was probed last time: 1 hit of 4, below half
    assert cache.bypassed


def test_about_one_call_in_probe_is_looked_at_with_gaps_that_vary():
    cache = stepped_aside(capacity=4, probe=64, size=10)
    cache.PROBE_WINDOW = 10**9  # never decide: only count the probes
    probed = []
    for call in range(64_000):
        before = cache._probes
        assert cache.use([1, 2]) is False
        if cache._probes != before:
            probed.append(call)
    gaps = np.diff(probed)
    assert 900 <= len(probed) <= 1100  # 1,000 expected
    assert gaps.min() >= 32 and gaps.max() <= 95 and len(set(gaps.tolist())) > 20
    assert cache.stats()["hits"] == cache.stats()["misses"] == 0  # probes read nothing from the cache


def test_scalar_keys_from_per_item_reads_are_probed():
    cache = stepped_aside(capacity=4)
    for _ in range(3):
        cache.use(9)
    assert cache.bypassed  # 2 hits of 3 reads: the window is not full yet
    cache.use(9)
    assert not cache.bypassed


@pytest.mark.parametrize("size", [10, 1000])
def test_the_ghost_costs_four_bytes_per_index_and_only_once_stepped_aside(size):
    cache = SlotCache(4, size)
    cache.use([1, 2])  # in use: no probe, no ghost
    assert cache._ghost is None
    cache.bypassed, cache.PROBE = True, 1
    cache.use([1, 2])
    assert cache._ghost is not None and cache._ghost.nbytes == 4 * size


def test_a_cache_that_is_still_filling_does_not_step_aside():
    cache = SlotCache(4, 100)
    cache.WINDOW, cache.LOW = 2, 0.5
    cache.count_and_insert(np.array([1, 2]), [np.zeros((2, 3), np.float32)], None, cache.generation)
    cache.count_and_insert(np.array([3]), [np.zeros((1, 3), np.float32)], None, cache.generation)
    assert not cache.bypassed  # 3 misses, none of them counted: the cache is not full
    cache.count_and_insert(np.array([4, 5]), [np.zeros((2, 3), np.float32)], None, cache.generation)
    assert not cache.bypassed  # the read that filled it counted from a cache with room: still not counted
    cache.count_and_insert(np.array([6, 7]), [np.zeros((2, 3), np.float32)], None, cache.generation)
    assert cache.bypassed  # full, and 2 misses of 2


def test_reset_measurement_uses_the_cache_again():
    cache = stepped_aside(capacity=4)
    cache.use([1, 2])
    cache.reset_measurement()
    assert cache.use([1, 2]) is True


def test_a_call_larger_than_the_cache_counts_only_the_part_it_could_keep():
    cache = stepped_aside(capacity=1)  # one row of room, calls of 4 keys
    cache.use([1, 2, 3, 4])
    cache.use([1, 2, 3, 4])  # all 4 seen last probe, but the cache keeps 1 of 4: 1 hit of 4, below half
    assert cache.bypassed
