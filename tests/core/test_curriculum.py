import json
import math

import pytest

from mixweave import CurriculumState
from mixweave.core.curriculum import DEFAULT_PHASES


def test_defaults_and_documented_warmup():
    state = CurriculumState()
    assert state.phase == "warmup"
    assert state.sampling_probs() == {"high": 0.9, "medium": 0.1, "low": 0.0}
    assert state.phase_names == tuple(DEFAULT_PHASES)


# The original's built-in schedules (OpenADMET curriculum.py, the version the document describes), best first.
ORIGINAL = {
    1: [("warmup", [1.0]), ("polish", [1.0])],
    2: [("warmup", [0.9, 0.1]), ("expand", [0.6, 0.4]), ("polish", [1.0, 0.0])],
    3: [
        ("warmup", [0.9, 0.1, 0.0]),
        ("expand", [0.6, 0.35, 0.05]),
        ("robust", [0.4, 0.4, 0.2]),
        ("polish", [1.0, 0.0, 0.0]),
    ],
}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_built_in_schedules_walk_the_original_tables(n):
    qualities = [f"q{i}" for i in range(n)]
    state = CurriculumState(qualities, patience=1)
    assert state.patience == 1 and CurriculumState(qualities).patience == 3  # the original's default
    seen = [(state.phase, list(state.sampling_probs().values()))]
    for _ in range(10):
        if state.update(1.0):
            seen.append((state.phase, list(state.sampling_probs().values())))
    assert seen == ORIGINAL[n]
    assert list(state.sampling_probs()) == qualities


@pytest.mark.parametrize("n", [4, 5])
def test_more_qualities_get_equal_weights_and_a_warning(n):
    qualities = [f"q{i}" for i in range(n)]
    with pytest.warns(
        UserWarning, match=rf"no built-in curriculum for {n} qualities: every phase weights them equally"
    ):
        state = CurriculumState(qualities)
    assert state.phase_names == ("warmup", "expand", "robust", "polish")
    for probs in state.phases.values():
        assert probs == pytest.approx(dict.fromkeys(qualities, 1 / n))


def test_plateau_continue_advances_every_epoch_while_the_plateau_lasts():
    restart, cont = CurriculumState(patience=2), CurriculumState(patience=2, plateau="continue")
    losses = [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.6, 0.6]
    phases = {"restart": [], "continue": []}
    for loss in losses:
        restart.update(loss)
        cont.update(loss)
        phases["restart"].append(restart.phase)
        phases["continue"].append(cont.phase)
    # restart: each phase gets `patience` fresh epochs; continue: one phase per further flat epoch
    assert phases["restart"] == ["warmup", "warmup", "expand", "expand", "robust", "robust", "robust", "polish"]
    assert phases["continue"] == ["warmup", "warmup", "expand", "robust", "polish", "polish", "polish", "polish"]
    assert cont.best == 0.5 and cont.bad_epochs == 2


def test_min_epochs_per_phase_holds_a_phase_through_a_plateau():
    state = CurriculumState(patience=1, min_epochs_per_phase=3)
    phases = []
    for _ in range(8):
        state.update(1.0)
        phases.append(state.phase)
    # a flat loss: patience alone would advance every epoch; each phase now lasts 3 updates
    assert phases == ["warmup", "warmup", "expand", "expand", "expand", "robust", "robust", "robust"]
    saved = json.loads(json.dumps(state.state_dict()))
    assert saved["epochs_in_phase"] == 2
    other = CurriculumState(patience=1, min_epochs_per_phase=3)
    other.load_state_dict(saved)
    assert other.update(1.0) and other.phase == "polish"
    legacy = {k: v for k, v in saved.items() if k != "epochs_in_phase"}  # a state saved before the key existed
    old = CurriculumState(patience=1, min_epochs_per_phase=3)
    old.load_state_dict(legacy)
    assert old.epochs_in_phase == 0
    with pytest.raises(ValueError, match=r"`min_epochs_per_phase` must be an int >= 0, got -1"):
        CurriculumState(min_epochs_per_phase=-1)


def test_plateau_advances_after_patience_and_stays_at_last_phase():
    state = CurriculumState(patience=2, min_delta=0.1)
    # improvements larger than min_delta reset the count; smaller ones do not count
    assert [state.update(x) for x in (1.0, 0.8, 0.75, 0.74)] == [False, False, False, True]
    assert state.phase == "expand"
    changes = [state.update(0.74) for _ in range(10)]
    assert changes.count(True) == 2 and state.phase == "polish"
    assert not any(state.update(0.74) for _ in range(5))


def test_custom_phases_and_qualities():
    phases = {"clean": {"gold": 1.0}, "all": {"gold": 0.5, "silver": 0.5}}
    state = CurriculumState(qualities=("gold", "silver"), patience=1, phases=phases)
    assert state.sampling_probs() == {"gold": 1.0, "silver": 0.0}
    state.update(1.0)
    assert state.update(1.0) and state.phase == "all"


def test_state_dict_roundtrip_json():
    state = CurriculumState(patience=3)
    for x in (1.0, 0.9, 0.95):
        state.update(x)
    saved = json.loads(json.dumps(state.state_dict()))
    other = CurriculumState(patience=3)
    other.load_state_dict(saved)
    assert (other.phase, other.best, other.bad_epochs) == (state.phase, 0.9, 1)
    fresh = CurriculumState()
    fresh.load_state_dict(json.loads(json.dumps(CurriculumState().state_dict())))
    assert math.isinf(fresh.best)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(patience=0), r"`patience` must be an int >= 1, got 0"),
        (dict(min_delta=-1.0), r"`min_delta` must be a finite number >= 0, got -1.0"),
        (dict(qualities=[]), r"`qualities` must be a non-empty list of names"),
        (
            dict(qualities=("a", "a"), phases={"p": {"a": 1.0}}),
            r"`qualities` must be a non-empty list of names, each once",
        ),
        (dict(plateau="reset"), r"`plateau` must be one of 'restart', 'continue', got 'reset'"),
        (dict(phases={"p": {"high": 0.5, "ultra": 0.5}}), r"`phases\['p'\]` names unknown qualities \['ultra'\]"),
        (dict(phases={"p": {"high": 0.5, "low": 0.4}}), r"`phases\['p'\]` must sum to 1"),
        (dict(phases={}), r"`phases` must be a non-empty mapping"),
    ],
    ids=["patience", "min-delta", "no-qualities", "duplicate", "plateau", "unknown", "sum", "empty"],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CurriculumState(**kwargs)


def test_bad_updates_and_states():
    state = CurriculumState()
    with pytest.raises(ValueError, match=r"`val_loss` must be a number, got nan"):
        state.update(float("nan"))
    with pytest.raises(TypeError, match=r"`val_loss` must be a real number, got str '0\.5'"):
        state.update("0.5")
    with pytest.raises(TypeError, match=r"`val_loss` must be a real number, got bool True"):
        state.update(True)
    with pytest.raises(ValueError, match=r"`phase` must be one of \['warmup', 'expand', 'robust', 'polish'\]"):
        state.set_phase("cooldown")
    with pytest.raises(ValueError, match=r"`state_dict` is missing key 'bad_epochs'"):
        state.load_state_dict({"phase": "warmup", "best": None})


def test_update_without_process_group_is_local_and_sync_true_says_why():
    state = CurriculumState(patience=1)
    state.update(1.0)
    assert state.update(1.0) and state.phase == "expand"  # sync=None: no process group, plain local update
    with pytest.raises(RuntimeError, match=r"sync=True.*process group"):
        state.update(1.0, sync=True)
    assert state.bad_epochs == 0  # refused before anything changed


def test_update_accepts_numpy_and_zero_dim_tensor_losses():
    import numpy as np
    import torch

    plain, mixed = CurriculumState(patience=1), CurriculumState(patience=1)
    for loss in (1.0, 1.0, 0.5, 0.5):
        plain.update(loss)
    for loss in (np.float32(1.0), np.float64(1.0), torch.tensor(0.5), np.array(0.5)):
        mixed.update(loss)
    assert mixed.state_dict() == plain.state_dict()


def test_a_state_with_a_nan_best_is_refused():
    state = CurriculumState()
    with pytest.raises(ValueError, match=r"`state_dict\['best'\]` must be a number, got nan"):
        state.load_state_dict({"phase": "expand", "best": float("nan"), "bad_epochs": 0})
    assert state.phase == "warmup"  # nothing was restored
