"""Counter-based random numbers: a stream key and a position in, the same number out, in any process.

The uniform number used at position ``p`` of a stream is a hash of
``(key, p)`` (SplitMix64's finaliser, Steele et al. 2014), so any position can
be computed without the positions before it. Rank sharding (each rank
computes only its own positions) and resumption (start at position ``p``)
therefore cost nothing extra. No global random state is read or written.

Example:
    >>> import numpy as np
    >>> key = derive_key(0, 3)  # seed 0, epoch 3
    >>> whole = uniform(key, np.arange(1000))
    >>> bool(np.array_equal(uniform(key, np.arange(500, 510)), whole[500:510]))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np

from .._validation import check_int

__all__ = ["derive_key", "per_pass", "permute", "uniform"]

_MASK: Final = (1 << 64) - 1
_GAMMA: Final = 0x9E3779B97F4A7C15
_M1: Final = 0xBF58476D1CE4E5B9
_M2: Final = 0x94D049BB133111EB
_U_GAMMA, _U_M1, _U_M2 = np.uint64(_GAMMA), np.uint64(_M1), np.uint64(_M2)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _mix_int(z: int) -> int:
    """SplitMix64 finaliser on one Python int."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def _mix_inplace(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array, in place (wrapping arithmetic)."""
    z ^= z >> _S30
    z *= _U_M1
    z ^= z >> _S27
    z *= _U_M2
    z ^= z >> _S31
    return z


def derive_key(seed: int, *words: int) -> int:
    """Derive a 64-bit stream key from a seed and further words (epoch, rank, group...).

    Distinct word sequences give unrelated streams; the same sequence always
    gives the same key, in any process.

    Example:
        >>> derive_key(0, 1) == derive_key(0, 1) != derive_key(0, 2)
        True
    """
    key = _mix_int(int(seed) + _GAMMA)
    for word in words:
        key = _mix_int(key ^ _mix_int(int(word) + 2 * _GAMMA))
    return key


def _hash(key: int, counters: np.ndarray) -> np.ndarray:
    z = np.asarray(counters).astype(np.uint64)
    z += np.uint64(1)
    z *= _U_GAMMA
    z += np.uint64(key & _MASK)
    return _mix_inplace(z)


def uniform(key: int, positions: Any) -> np.ndarray:
    """Uniform floats in ``[0, 1)`` for the given integer positions of stream ``key``.

    The value at a position depends only on ``(key, position)``: this is the
    counter-based generator behind every draw.

    Args:
        key: stream key, e.g. from :func:`derive_key`.
        positions: non-negative integer array of any shape.

    Returns:
        float64 array of the same shape, 53 random bits each.
    """
    z = _hash(key, positions)
    z >>= _S11
    return z.astype(np.float64) * (1.0 / (1 << 53))


def _feistel(x: np.ndarray, half: int, round_keys: tuple[int, ...]) -> np.ndarray:
    mask = np.uint64((1 << half) - 1)
    shift = np.uint64(half)
    left, right = x >> shift, x & mask
    for rk in round_keys:
        left, right = right, left ^ (_hash(rk, right) & mask)
    return (left << shift) | right


def permute(key: int, n: int, positions: Any) -> np.ndarray:
    """Entries ``positions`` of a pseudo-random permutation of ``range(n)``.

    A keyed Feistel network with cycle walking: a bijection of ``range(n)``
    evaluated at any position in O(1), so drawing ``m`` items without
    replacement from a source of size ``n`` costs O(m), not O(n log n).

    Example:
        >>> sorted(permute(7, 5, np.arange(5)).tolist())
        [0, 1, 2, 3, 4]
    """
    n = check_int(n, "n", minimum=1)
    pos = np.asarray(positions, dtype=np.int64)
    if pos.size and (pos.min() < 0 or pos.max() >= n):
        raise ValueError(f"`positions` must lie in [0, {n}), got values in [{pos.min()}, {pos.max()}]")
    if n == 1:
        return np.zeros(pos.shape, dtype=np.int64)
    bits = max(2, (n - 1).bit_length())
    half = (bits + 1) // 2
    round_keys = tuple(derive_key(key, r) for r in range(6))
    out = _feistel(pos.astype(np.uint64).ravel(), half, round_keys)
    walking = np.flatnonzero(out >= n)
    while walking.size:  # cycle walking: the domain is < 4n, so few rounds
        out[walking] = _feistel(out[walking], half, round_keys)
        walking = walking[out[walking] >= n]
    return out.astype(np.int64).reshape(pos.shape)


def per_pass(key: int, size: int, draws: Any, permutation: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """Draw number ``k`` of back-to-back passes over ``size`` items, a fresh permutation per pass.

    Draw ``k`` falls in pass ``p = k // size`` at offset ``k - p * size``;
    ``permutation(derive_key(key, p), offsets)`` maps offsets of pass ``p`` to
    items. Every item appears once per full pass, and passes are independent
    streams, so a source that is drawn more often than its size is cycled,
    not repeated at random.

    Example:
        >>> out = per_pass(5, 3, np.arange(6), lambda k, j: permute(k, 3, j))
        >>> sorted(out[:3].tolist()), sorted(out[3:].tolist())
        ([0, 1, 2], [0, 1, 2])
    """
    k = np.asarray(draws, dtype=np.int64)
    passes = k // size
    if k.size == 0 or passes.min() == passes.max():  # one pass: no grouping needed
        p = int(passes[0]) if k.size else 0
        return np.asarray(permutation(derive_key(key, p), k - p * size), dtype=np.int64)
    out = np.empty(k.shape[0], dtype=np.int64)
    for p in np.unique(passes).tolist():
        sel = passes == p
        out[sel] = permutation(derive_key(key, p), k[sel] - p * size)
    return out
