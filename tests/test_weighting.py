"""Loss weighting strategies against NumPy transcriptions of the reference loops and papers."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl import flags
from ml_collections import config_flags

from mtnets import weighting as wl
from mtnets.weighting import dwa, gradnorm, pcgrad, rlw, uncertainty
from tests.experiment_configs import experiment_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(*args):
    """Parses a command line as train.py does (config_flags reads overrides from sys.argv)."""
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True)
    saved, sys.argv = sys.argv, ["train.py", *args]
    try:
        values(sys.argv)
    finally:
        sys.argv = saved
    return values.config


def _config(name):
    """configs/default.py with weighting `name` over tasks "a" and "b"."""
    config = experiment_config({"seed": 0, "weighting.name": name})
    config.weighting.fixed.weights = {"a": 2.0, "b": 1.0}
    return config


def _run_updates(strategy, losses):
    """Weights used at every step while feeding `losses` `[S, T]` to `update`."""
    state = strategy.init()
    update = jax.jit(strategy.update)
    used = []
    for row in losses:
        used.append(np.asarray(strategy.weights(state)))
        state = update(state, jnp.asarray(row, jnp.float32))
    return np.stack(used), state


def lorenmt_dwa(losses, steps_per_epoch, temperature):
    """`MTAN:im2im_pred/utils.py:128-181`, transcribed: the weights used at every batch."""
    num_steps, num_tasks = losses.shape
    total_epoch = num_steps // steps_per_epoch
    lambda_weight = np.ones([num_tasks, total_epoch])
    avg_cost = np.zeros([total_epoch, num_tasks])
    used = []
    for index in range(total_epoch):
        if index == 0 or index == 1:
            lambda_weight[:, index] = 1.0
        else:
            w = avg_cost[index - 1] / avg_cost[index - 2]
            lambda_weight[:, index] = (
                num_tasks * np.exp(w / temperature) / np.sum(np.exp(w / temperature))
            )
        for k in range(steps_per_epoch):
            cost = losses[index * steps_per_epoch + k]
            used.append(lambda_weight[:, index].copy())
            avg_cost[index] += cost / steps_per_epoch
    return np.stack(used)


@pytest.mark.parametrize("temperature", [2.0, 0.5])
def test_dwa_matches_lorenmt_over_epochs(temperature):
    rng = np.random.default_rng(0)
    steps_per_epoch, epochs, tasks = 4, 6, 3
    # Losses that fall at task-specific paces, with noise, so the ratios differ.
    pace = np.array([0.9, 0.6, 0.99])
    losses = np.stack(
        [pace ** (s / steps_per_epoch) * rng.uniform(0.8, 1.2, tasks) for s in range(24)]
    )
    used, state = _run_updates(dwa.dwa(tasks, steps_per_epoch, temperature), losses)
    expected = lorenmt_dwa(losses, steps_per_epoch, temperature)
    np.testing.assert_allclose(used, expected, rtol=1e-5)
    assert np.all(used[: 2 * steps_per_epoch] == 1.0)  # the first two epochs
    assert not np.allclose(used[-1], 1.0)
    np.testing.assert_allclose(used[-1].sum(), tasks, rtol=1e-6)  # K * softmax sums to K
    assert int(state["epochs"]) == epochs


def test_dwa_every_n_steps_is_dwa_with_n_step_epochs():
    rng = np.random.default_rng(1)
    losses = rng.uniform(0.5, 2.0, (15, 2))
    used, _ = _run_updates(dwa.dwa(2, 3, 2.0), losses)
    np.testing.assert_allclose(used, lorenmt_dwa(losses, 3, 2.0), rtol=1e-5)
    config = _config("dwa")
    config.weighting.dwa.update_every_steps = 3
    config.weighting.dwa.temperature = 2.0
    via_config, _ = _run_updates(
        wl.create_weighting(config, ["a", "b"], steps_per_epoch=100), losses
    )
    np.testing.assert_allclose(via_config, used)


def test_dwa_needs_a_period():
    config = _config("dwa")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        wl.create_weighting(config, ["a", "b"])


def test_uncertainty_total_and_gradients():
    strategy = uncertainty.uncertainty(3)
    state = wl.initial_state(strategy, optax.adam(1e-3))
    s = np.asarray(state["params"]["log_vars"])
    np.testing.assert_array_equal(s, [-0.5, -0.5, -0.5])
    losses = jnp.asarray([0.7, 2.0, 0.1])
    total, (g_params, g_losses) = jax.value_and_grad(
        lambda p, x: strategy.total(p, state, x), argnums=(0, 1)
    )(state["params"], losses)
    ls = np.asarray(losses, np.float64)
    # lorenmt: sum_i L_i / (2 exp(s_i)) + s_i / 2 (`MTAN:im2im_pred/utils.py:167-168`).
    np.testing.assert_allclose(total, np.sum(ls / (2 * np.exp(s)) + s / 2), rtol=1e-6)
    np.testing.assert_allclose(g_params["log_vars"], -ls / (2 * np.exp(s)) + 0.5, rtol=1e-6)
    np.testing.assert_allclose(g_losses, 1 / (2 * np.exp(s)), rtol=1e-6)
    np.testing.assert_allclose(strategy.weights(state), 1 / (2 * np.exp(s)), rtol=1e-6)
    assert "opt_state" in state


def gradnorm_numpy(w, grad_norms, losses, initial, alpha):
    """Chen et al. 2018 Eq. 2 differentiated by hand with the target held constant."""
    g = w * grad_norms
    rate = losses / initial
    r = rate / rate.mean()
    target = g.mean() * r**alpha
    return np.sign(g - target) * grad_norms


def test_gradnorm_weight_gradient_matches_numpy():
    rng = np.random.default_rng(2)
    for _ in range(5):
        w = rng.uniform(0.5, 1.5, 4)
        norms, losses, initial = (rng.uniform(0.1, 3.0, 4) for _ in range(3))
        got = gradnorm.gradnorm_weight_gradient(
            jnp.asarray(w), jnp.asarray(norms), jnp.asarray(losses), jnp.asarray(initial), 1.5
        )
        np.testing.assert_allclose(got, gradnorm_numpy(w, norms, losses, initial, 1.5), rtol=1e-5)


def test_gradnorm_surgery_uses_first_losses_and_renormalises():
    strategy = gradnorm.gradnorm(2, alpha=1.0)
    state = strategy.init()
    # Task grads on W: task 0 has norm 3, task 1 norm 4 (leaves [T, ...]).
    task_grads = {"kernel": jnp.asarray([[3.0, 0.0], [0.0, 4.0]])}
    losses = jnp.asarray([1.0, 2.0])
    ones = jnp.ones(2)
    shared, grad = strategy.surgery(state, ones, losses, task_grads, jax.random.key(0))
    assert shared is None
    # At step 0, L(0) = L, so r = 1: target = mean(G) = 3.5; G = (3, 4) -> sign (-1, +1).
    np.testing.assert_allclose(grad["weights"], [-3.0, 4.0])
    state = {**state, "params": {"weights": jnp.asarray([1.5, 1.0])}}
    state = strategy.update(state, losses)
    np.testing.assert_allclose(state["params"]["weights"], [1.2, 0.8], rtol=1e-6)
    np.testing.assert_allclose(state["initial_losses"], losses)
    # Later steps keep L(0): loss 0 halves, so r = (0.5/1, 2/2) / 0.75.
    _, grad = strategy.surgery(state, ones, jnp.asarray([0.5, 2.0]), task_grads, jax.random.key(0))
    expected = gradnorm_numpy(
        np.array([1.2, 0.8]), np.array([3.0, 4.0]), np.array([0.5, 2.0]), np.array([1.0, 2.0]), 1.0
    )
    np.testing.assert_allclose(grad["weights"], expected, rtol=1e-5)


def pcgrad_numpy(grads, order):
    """Yu et al. 2020, Algorithm 1."""
    out = np.zeros(grads.shape[1])
    for i in range(grads.shape[0]):
        g = grads[i].copy()
        for j in order[i]:
            if j == i:
                continue
            dot = g @ grads[j]
            if dot < 0:
                g = g - dot / (grads[j] @ grads[j]) * grads[j]
        out += g
    return out


def test_pcgrad_two_conflicting_gradients_by_hand():
    g = jnp.asarray([[1.0, 0.0], [-1.0, 1.0]])
    order = jnp.asarray([[0, 1], [1, 0]])
    # g0 . g1 = -1: g0' = g0 + 1/2 g1 = (0.5, 0.5); g1' = g1 + g0 = (0, 1).
    np.testing.assert_allclose(pcgrad.pcgrad_combine(g, order), [0.5, 1.5], rtol=1e-6)


def test_pcgrad_matches_numpy():
    rng = np.random.default_rng(3)
    grads = rng.normal(size=(4, 10))
    order = np.stack([rng.permutation(4) for _ in range(4)])
    got = pcgrad.pcgrad_combine(jnp.asarray(grads, jnp.float32), jnp.asarray(order))
    np.testing.assert_allclose(got, pcgrad_numpy(grads, order), rtol=1e-4, atol=1e-5)


def test_pcgrad_surgery_keeps_tree_shapes():
    strategy = pcgrad.pcgrad(3)
    tree = {"a": jnp.ones((3, 2, 2)), "b": {"c": -jnp.ones((3, 5))}}
    ones = jnp.ones(3)
    shared, extra = strategy.surgery(strategy.init(), ones, ones, tree, jax.random.key(0))
    assert extra is None
    assert jax.tree.map(jnp.shape, shared) == {"a": (2, 2), "b": {"c": (5,)}}
    # Identical task gradients never conflict: the result is their sum.
    np.testing.assert_allclose(shared["a"], 3.0)


def test_rlw_softmax_of_normal_draws_and_reproducible():
    strategy = rlw.rlw(3, seed=5)
    used, state = _run_updates(strategy, np.ones((4, 3)))
    for step, row in enumerate(used):
        z = jax.random.normal(jax.random.fold_in(jax.random.key(5), step), (3,))
        np.testing.assert_allclose(row, np.exp(z) / np.exp(z).sum(), rtol=1e-5)
    assert not np.allclose(used[0], used[1])
    np.testing.assert_allclose(used.sum(axis=1), 1.0, rtol=1e-6)


def test_resolve_path():
    params = {"backbone": {"layer10_0": {"k": 1}, "layer9_0": {"k": 2}, "conv1": {"k": 3}}}
    assert wl.resolve_path(params, "auto") == ("backbone", "layer10_0")
    hrnet = {"backbone": {"stage4_1": {}, "stage4_0": {}, "transition3_3_0": {}, "stem1": {}}}
    assert wl.resolve_path(hrnet, "auto") == ("backbone", "stage4_1")
    assert wl.resolve_path(params, "backbone/conv1") == ("backbone", "conv1")
    with pytest.raises(ValueError, match="shared_path"):
        wl.resolve_path(params, "backbone/nope")
    replaced = wl.set_path(params, ("backbone", "conv1"), {"k": 0})
    assert replaced["backbone"]["conv1"] == {"k": 0} and params["backbone"]["conv1"] == {"k": 3}


def test_create_weighting_names():
    for name in wl.STRATEGIES:
        config = _config(name)
        strategy = wl.create_weighting(config, ["a", "b"], steps_per_epoch=4)
        assert strategy.weights(strategy.init()).shape == (2,)
    config = _config("nope")
    with pytest.raises(ValueError, match="config.weighting.name"):
        wl.create_weighting(config, ["a"])


# ------------------------------------------------------------------------------------------------
# Composition.


def test_chain_dwa_then_pcgrad_projects_the_dwa_weighted_gradients():
    """Composed "dwa+pcgrad": DWA's weights, then PCGrad's projection of the weighted gradients."""
    rng = np.random.default_rng(4)
    losses = rng.uniform(0.5, 2.0, (10, 3))  # 5 epochs of 2 steps
    config = _config("dwa+pcgrad")
    config.weighting.dwa.update_every_steps = 2
    strategy = wl.create_weighting(config, ["a", "b", "c"])
    assert len(strategy.members) == 2 and strategy.shared_path == "backbone"
    state = wl.initial_state(strategy, optax.sgd(0.1))
    update = jax.jit(strategy.update)
    for row in losses[:8]:
        state = update(state, jnp.asarray(row, jnp.float32))
    expected_weights = lorenmt_dwa(losses, 2, 2.0)[8]  # the weights of step 8 (epoch 4)
    weights = strategy.weights(state)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5)
    assert not np.allclose(weights, 1.0)

    grads = rng.normal(size=(3, 2, 5)).astype(np.float32)
    key = jax.random.key(7)
    shared, extra = strategy.surgery(
        state, weights, jnp.asarray(losses[8]), {"k": jnp.asarray(grads)}, key
    )
    order = np.asarray(pcgrad.random_orders(key, 3))
    weighted = np.asarray(weights, np.float64)[:, None] * grads.reshape(3, -1)
    np.testing.assert_allclose(
        shared["k"].reshape(-1), pcgrad_numpy(weighted, order), rtol=1e-5, atol=1e-6
    )
    assert extra == (None, None)


def test_chain_weights_multiply_and_states_are_a_tuple():
    config = _config("fixed+uncertainty")
    strategy = wl.create_weighting(config, ["a", "b"])
    state = wl.initial_state(strategy, optax.adam(1e-3))
    assert isinstance(state, tuple) and state[0]["weights"].shape == (2,)
    assert "opt_state" in state[1] and wl.trainable_params(state) == ({}, state[1]["params"])
    losses = jnp.asarray([0.7, 2.0])
    # fixed (2, 1), then lorenmt's uncertainty with s = -0.5 on the weighted losses.
    s = -0.5
    expected = np.sum(np.array([2.0, 1.0]) * [0.7, 2.0] / (2 * np.exp(s)) + s / 2)
    np.testing.assert_allclose(
        strategy.total(wl.trainable_params(state), state, losses), expected, rtol=1e-6
    )
    np.testing.assert_allclose(
        strategy.weights(state), np.array([2.0, 1.0]) / (2 * np.exp(s)), rtol=1e-6
    )


def test_chain_rejects_two_surgeries_and_repeated_names():
    with pytest.raises(ValueError, match="At most one chained weighting"):
        wl.create_weighting(_config("gradnorm+pcgrad"), ["a", "b"])
    with pytest.raises(ValueError, match="names a strategy twice"):
        wl.create_weighting(_config("dwa+dwa"), ["a", "b"], steps_per_epoch=2)
    with pytest.raises(ValueError, match=r"config.weighting.name 'dwa\+pcgrd' \(no strategy"):
        wl.create_weighting(_config("dwa+pcgrd"), ["a", "b"], steps_per_epoch=2)


# ------------------------------------------------------------------------------------------------
# Registry and config section.


def test_registry_defaults_read_from_source_equal_the_registered_ones():
    builders = wl.registry.load_all()
    assert (
        set(builders)
        == set(wl.STRATEGIES)
        >= {"fixed", "equal", "dwa", "uncertainty", "gradnorm", "pcgrad", "rlw", "famo"}
    )
    assert wl.registry._DEFAULTS == wl.registry.declared_defaults()
    assert wl.registry.declared_defaults()["dwa"] == {"temperature": 2.0, "update_every_steps": 0}
    assert wl.registry.declared_defaults()["uncertainty"] == {"init": -0.5}


def test_the_config_section_loads_no_jax():
    code = (
        "import sys; from mtnets.weighting import weighting_config; "
        "c = weighting_config('dwa'); assert c.dwa.temperature == 2.0; "
        "assert 'jax' not in sys.modules, 'jax imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_weighting_fields_from_the_command_line():
    config = _parse(
        "--config=configs/default.py",
        "--config.weighting.name=dwa+pcgrad",
        "--config.weighting.seed=3",
        "--config.weighting.dwa.temperature=0.5",
        "--config.weighting.uncertainty.init=-1.0",
        "--config.weighting.famo.gamma=0.01",
        "--config.weighting.pcgrad.shared_path=backbone/layer4_0",
    )
    assert config.weighting.name == "dwa+pcgrad" and config.weighting.seed == 3
    assert config.weighting.dwa.temperature == 0.5
    assert config.weighting.uncertainty.init == -1.0
    assert config.weighting.famo.gamma == 0.01
    assert config.weighting.pcgrad.shared_path == "backbone/layer4_0"
    assert wl.registry.check_config(config) == ("dwa", "pcgrad")


def test_rlw_seed_defaults_to_config_seed_and_can_be_set():
    config = _config("rlw")
    config.seed = 5
    draws = wl.create_weighting(config, ["a", "b", "c"]).init()["weights"]
    np.testing.assert_array_equal(draws, rlw.rlw(3, seed=5).init()["weights"])
    config.weighting.seed = 6
    draws = wl.create_weighting(config, ["a", "b", "c"]).init()["weights"]
    np.testing.assert_array_equal(draws, rlw.rlw(3, seed=6).init()["weights"])


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            "temperature",
            2.0,
            "config.weighting.temperature is now config.weighting.dwa.temperature",
        ),
        ("init", -0.5, "config.weighting.init is now config.weighting.uncertainty.init"),
        ("weights", {"a": 1.0}, "config.weighting.weights is now config.weighting.fixed.weights"),
        ("tempo", 2.0, "Unknown field config.weighting.tempo"),
    ],
)
def test_old_flat_fields_are_errors_naming_the_new_field(field, value, message):
    config = _config("dwa")
    config.weighting[field] = value
    with pytest.raises(ValueError, match=message):
        wl.create_weighting(config, ["a", "b"], steps_per_epoch=2)


def test_unknown_strategy_field_and_missing_section_are_errors():
    config = _config("dwa")
    config.weighting.dwa.temprature = 1.0
    with pytest.raises(
        ValueError, match=r"Unknown field\(s\) \['temprature'\] in config.weighting.dwa"
    ):
        wl.create_weighting(config, ["a", "b"], steps_per_epoch=2)
    del config.weighting["dwa"]
    with pytest.raises(ValueError, match="config.weighting has no sub-section 'dwa'"):
        wl.create_weighting(config, ["a", "b"], steps_per_epoch=2)
