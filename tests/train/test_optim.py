"""Learning-rate schedules: StepLR exact at every boundary under `jax.jit`, for the step sizes
that lorenmt's configs resolve to."""

import glob
import importlib
import os

import jax
import numpy as np
import optax
import pytest

from mtnets import config_utils
from mtnets.train import optim

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LORENMT = sorted(
    f"configs.nyuv2.{os.path.basename(p)[:-3]}"
    for p in glob.glob(os.path.join(ROOT, "configs", "nyuv2", "segnet_*.py"))
)
TRAIN_IMAGES = 795  # lorenmt's NYUv2 training split


def boundaries(step_size: int, total: int) -> list[int]:
    """Every multiple of `step_size` up to `total`, with its two neighbours, and the ends."""
    steps = {0, total}
    for m in range(step_size, total + 1, step_size):
        steps.update((m - 1, m, m + 1))
    return sorted(s for s in steps if 0 <= s <= total)


def step_lr(lr: float, step_size: int, gamma: float, counts) -> np.ndarray:
    """PyTorch's StepLR: lr * gamma ** (count // step_size), integer floor division."""
    return np.array([lr * gamma ** (c // step_size) for c in counts], np.float64)


def jitted(schedule, counts) -> np.ndarray:
    """The schedule evaluated inside `jit` on int32 counts, as the optimizer's update does."""
    run = jax.jit(jax.vmap(schedule))
    return np.asarray(run(np.asarray(counts, np.int32)), np.float64)


@pytest.mark.parametrize("module", LORENMT)
def test_step_schedule_is_exact_at_every_boundary_under_jit(module):
    config = importlib.import_module(module).get_config()
    config = config_utils.resolve_durations(config, TRAIN_IMAGES)
    step_size = 100 * (TRAIN_IMAGES // 2)  # StepLR(100 epochs) of 397 steps
    assert (config.schedule.step_size, config.num_train_steps) == (step_size, 200 * 397)
    counts = boundaries(step_size, config.num_train_steps)
    expected = step_lr(1e-4, step_size, 0.5, counts)
    got = jitted(optim.create_schedule(config), counts)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert optim.milestones(config) == [39_700]  # the one halving within the 79,400 steps


@pytest.mark.parametrize("step_size", [3, 397, 1000, 39_700, 99_999])
def test_step_decay_matches_integer_division_for_other_sizes(step_size):
    counts = boundaries(step_size, 4 * step_size)
    got = jitted(optim.step_decay(0.1, step_size, 0.5), counts)
    np.testing.assert_allclose(got, step_lr(0.1, step_size, 0.5, counts), rtol=1e-6)


def test_optax_float_staircase_would_fail_this_check():
    """Why the schedule is ours: optax's staircase floors a float32 quotient, which falls short
    of 1 at 39,700 under jit. If optax becomes exact, this test says so and the note in
    mtnets/train/optim.py can go."""
    counts = boundaries(39_700, 79_400)
    expected = step_lr(1e-4, 39_700, 0.5, counts)
    theirs = jitted(optax.exponential_decay(1e-4, 39_700, 0.5, staircase=True), counts)
    wrong = [c for c, a, b in zip(counts, theirs, expected, strict=True) if not np.isclose(a, b)]
    assert wrong[:1] == [39_700]  # the first halving comes one step late (so does the second)


def test_step_decay_rejects_a_missing_step_size():
    with pytest.raises(ValueError, match="step_size must be positive, got 0"):
        optim.step_decay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="step_size must be positive, got None"):
        optim.step_decay(0.1, None, 0.5)
