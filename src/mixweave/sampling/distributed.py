"""Distributed helpers: ranks from the process group, and one sampler state for every rank of any world.

``torch.distributed`` is used only when a process group is initialised; with
none, a sampler is rank 0 of 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .._validation import check_rank

__all__ = ["all_reduce_sum", "gather_state", "resolve_distributed", "sync_curriculum"]


def resolve_distributed(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Fill in ``num_replicas``/``rank`` from ``torch.distributed`` when initialised, else ``(1, 0)``."""
    if num_replicas is None:
        num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if rank is None:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    return check_rank(num_replicas, rank)


def gather_state(sampler: Any, state: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One state of ``sampler`` that any rank of any number of ranks can restore (a collective).

    Every rank must call it (it all-gathers each rank's progress). The result
    resumes from the first global position of the epoch that some rank had
    not yet yielded (NOTE [ Elastic resume ] in :mod:`mixweave.sampling.base`):
    when the ranks are in step it equals any one rank's state, and when they
    are not, nothing is skipped. Save it from rank 0 with the model; restore
    it with ``sampler.load_state_dict`` on every rank, in any world. Without
    a process group it is ``sampler.state_dict()`` in that rank-free form.
    ``state`` (default ``sampler.state_dict()``) is this rank's state to
    gather, for callers that know better what was consumed (a loader that
    fetches ahead has drawn more than was trained on).

    Example:
        >>> from mixweave import WeightedSampler
        >>> s = WeightedSampler([1.0, 2.0, 3.0], num_samples=9, seed=0)
        >>> it = iter(s); _ = [next(it) for _ in range(4)]
        >>> state = gather_state(s)
        >>> (state["offset"], state["position"], state["num_replicas"])
        (4, 0, 1)
    """
    state = dict(sampler.state_dict() if state is None else state)
    next_position = sampler.next_global_position(state)
    if state["num_replicas"] > 1 and dist.is_available() and dist.is_initialized():
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        value = torch.tensor([next_position], dtype=torch.int64, device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        next_position = int(value.item())
    # In the rank-free form (rank 0 of 1) every position before `offset` counts as yielded;
    # an offset of num_samples is a finished epoch.
    return {**state, "offset": next_position, "position": 0, "num_replicas": 1, "rank": 0}


def sync_curriculum(state: tuple[int, float, int], sync: bool | None) -> tuple[int, float, int]:
    """Rank 0's curriculum ``(phase_index, best, bad_epochs)`` on every rank (NOTE [ Curriculum under
    torch.distributed ] in :mod:`mixweave.core.curriculum`).

    A collective when a process group with more than one rank is initialised
    (and ``sync`` is not False); otherwise ``state`` unchanged.

    Raises:
        RuntimeError: for ``sync=True`` without an initialised process group.
    """
    initialised = dist.is_available() and dist.is_initialized()
    if sync and not initialised:
        raise RuntimeError("`sync=True` needs an initialised torch.distributed process group; none is initialised")
    if not initialised or dist.get_world_size() < 2 or sync is False:
        return state
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    values = torch.tensor([float(state[0]), state[1], float(state[2])], dtype=torch.float64, device=device)
    dist.broadcast(values, src=0)
    phase, best, bad = values.tolist()
    return int(phase), float(best), int(bad)


def all_reduce_sum(values: np.ndarray, *, required: bool = False) -> np.ndarray:
    """``values`` summed over every rank (a collective, in float64), or unchanged without a process group.

    Every rank receives the same result, bit for bit. ``required=True``
    raises when no process group is initialised instead of returning ``values``.

    Raises:
        RuntimeError: for ``required=True`` without an initialised process group.
    """
    initialised = dist.is_available() and dist.is_initialized()
    if required and not initialised:
        raise RuntimeError("`distributed=True` needs an initialised torch.distributed process group; none is")
    if not initialised or dist.get_world_size() < 2:
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float64), device=device).clone()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()
