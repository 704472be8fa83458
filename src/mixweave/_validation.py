"""Argument checks shared by the whole package, so every message reads the same.

Each check raises ``TypeError`` for a value of the wrong type and ``ValueError``
for a value of the right type outside what is allowed. Messages name the
argument, what is allowed and what was given.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import reprlib
import sys
import types
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

__all__ = [
    "as_numpy",
    "check_bool",
    "check_choice",
    "check_int",
    "check_probabilities",
    "check_rank",
    "check_real",
    "check_saved_settings",
    "check_weights",
    "did_you_mean",
    "dispatch",
    "show",
    "warn",
]


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxset = 3, 4, 6, 6, 6
_SHORT.maxstring, _SHORT.maxother = 60, 60


def show(value: Any, limit: int = 60) -> str:
    """A short ``repr`` for error messages: bounded in depth and length while it is built.

    Never reprs unbounded input whole (a config that aliases expand to
    billions of values has a repr of that size).
    """
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` after checking its type and range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {show(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be an int <= {maximum}, got {value}")
    return value


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """`` in [0, 1)``, `` > 0``, `` <= 1`` or nothing: the allowed range as error messages print it."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """Return ``value`` as a finite ``float`` after checking its type and range.

    ``low``/``high`` bound the value (inclusive unless ``low_open``/``high_open``).
    NaN is never allowed; infinities only with ``finite=False``. Numpy scalars
    and 0-d arrays or tensors count as numbers.

    Raises:
        TypeError: for a bool or anything that is not a real number.
        ValueError: for NaN, infinity or a value outside the range; the message shows the interval.

    Example:
        >>> check_real(0.5, "alpha", low=0, high=1)
        0.5
    """
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()  # numpy scalars, 0-d arrays and 0-d tensors
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__} {show(value)}")
    value = float(value)
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if (math.isnan(value) if not finite else not math.isfinite(value)) or below or above:
        kind = "a finite number" if finite else "a number"
        raise ValueError(f"`{name}` must be {kind}{_range(low, high, low_open, high_open)}, got {value!r}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` if it is a ``bool`` (numpy's included); raise ``TypeError`` otherwise (no truthiness)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {type(value).__name__} {show(value)}")
    return bool(value)


def as_numpy(value: Any) -> Any:
    """A torch tensor (detected without importing torch) as a numpy array on the CPU; anything else unchanged.

    bfloat16 tensors, which numpy cannot hold, become float32.
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return value


def check_choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    """Check that ``value`` is one of ``allowed`` (the tuple the caller also dispatches on)."""
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{name}` must be one of {options}, got {show(value)}")
    return str(value)


def check_rank(num_replicas: Any, rank: Any) -> tuple[int, int]:
    """Check a ``(num_replicas, rank)`` pair as ``DistributedSampler`` does."""
    num_replicas = check_int(num_replicas, "num_replicas", minimum=1)
    rank = check_int(rank, "rank")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"`rank` must be in [0, {num_replicas - 1}] for num_replicas={num_replicas}, got {rank}")
    return num_replicas, rank


def check_weights(weights: Any, name: str = "weights", *, allow_all_zero: bool = False) -> np.ndarray:
    """Return ``weights`` as a 1-D float64 array of finite, non-negative values.

    Raises:
        TypeError: if ``weights`` is not array-like of real numbers.
        ValueError: if it is empty, not 1-D, holds NaN, inf or a negative value,
            or (unless ``allow_all_zero``) sums to zero.
    """
    weights = as_numpy(weights)
    try:
        arr = np.asarray(weights)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"`{name}` must be a 1-D array of real numbers, got {type(weights).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"`{name}` must be a 1-D array of real numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"`{name}` must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {arr.shape}")
    arr = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        pos = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"`{name}` must be finite, got {arr[pos]} at position {pos}")
    negative = arr < 0
    if negative.any():
        pos = int(np.flatnonzero(negative)[0])
        raise ValueError(f"`{name}` must be non-negative, got {arr[pos]} at position {pos}")
    if not allow_all_zero and not arr.any():
        raise ValueError(f"`{name}` must have at least one positive value, got all {arr.size} zero")
    return arr


def check_probabilities(values: Any, name: str, *, tolerance: float = 1e-6) -> np.ndarray:
    """Return ``values`` as weights that already sum to 1 within ``tolerance``."""
    arr = check_weights(values, name)
    total = float(arr.sum())
    if abs(total - 1.0) > tolerance:
        raise ValueError(
            f"`{name}` must sum to 1 (within {tolerance:g}), got {show(list(map(float, arr)))} summing to {total:.6g}"
        )
    return arr


def by_name(mapping: Mapping[Any, Any], names: Sequence[str], name: str) -> list[Any]:
    """The values of ``mapping`` in the order of ``names``, which it must cover exactly.

    Raises:
        ValueError: naming ``name``, every name, and the unknown and missing ones.

    Example:
        >>> by_name({"b": 2, "a": 1}, ["a", "b"], "weights")
        [1, 2]
    """
    unknown = sorted(set(map(str, mapping)) - set(names))
    missing = [n for n in names if n not in mapping]
    if unknown or missing:
        raise ValueError(
            f"`{name}` given by name must name every one of {list(names)}; unknown {unknown}, missing {missing}"
        )
    return [mapping[n] for n in names]


def check_saved_settings(
    state_dict: Any,
    expected: Mapping[str, Any],
    owner: str,
    *,
    extra: Sequence[str] = (),
    hints: Mapping[str, str] | None = None,
) -> None:
    """Check that a saved state has every key and was saved with the same settings as its new owner.

    Raises:
        TypeError: if ``state_dict`` is not a mapping.
        ValueError: naming the missing keys, or the first setting that differs with both values.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"`state_dict` must be a mapping, got {type(state_dict).__name__}")
    missing = [k for k in (*extra, *expected) if k not in state_dict]
    if missing:
        raise ValueError(
            f"`state_dict` is missing key(s) {missing}: it was saved by another kind of {owner}, or by none"
        )
    for key, value in expected.items():
        if state_dict[key] != value:
            hint = (hints or {}).get(key.rsplit(".", 1)[-1], "")
            raise ValueError(
                f"`state_dict` was saved with {key}={show(state_dict[key])} but this {owner} has {key}={show(value)}"
                + (f" ({hint})" if hint else "")
            )


def dispatch(registry: Mapping[str, T], name: Any, what: str) -> T:
    """``registry[name]``, or the ``check_choice`` error listing every registered name (one dispatcher per family).

    Example:
        >>> dispatch({"step": 1, "linear": 2}, "linear", "interpolation")
        2
    """
    return registry[check_choice(name, what, tuple(registry))]


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a mistyped ``word``, or ``""`` when none is close.

    Example:
        >>> did_you_mean("feilds", ["fields", "labels"])
        " (did you mean 'fields'?)"
    """
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def warn_renamed(old_name: str, new_name: str, *, stacklevel: int = 3) -> None:
    """A ``DeprecationWarning`` that keyword ``old_name`` is now ``new_name`` (``stacklevel`` as warnings.warn's)."""
    warnings.warn(f"`{old_name}=` is deprecated; write `{new_name}=`", DeprecationWarning, stacklevel=stacklevel + 1)


def outside_stacklevel() -> int:
    """The ``stacklevel`` that points a warning raised by the caller at the first frame outside mixweave."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def warn(message: str, *, stacklevel: int = 3) -> None:
    """Warn about legal but suspicious input, pointing at the caller's caller."""
    warnings.warn(message, UserWarning, stacklevel=stacklevel)
