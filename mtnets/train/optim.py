"""The optimizer and learning-rate schedule of an experiment config (optax; no TensorFlow)."""

from __future__ import annotations

import jax.numpy as jnp
import optax


def step_decay(init_value: float, step_size: int, gamma: float) -> optax.Schedule:
    """`init_value * gamma ** (count // step_size)`, PyTorch's StepLR counted in steps.

    The exponent is an integer floor division. optax's `exponential_decay(staircase=True)`
    floors `count / step_size` in float32, and under `jit` that quotient can fall just short
    of an integer (39700 * (1 / 39700) = 0.99999994), which moves the decay one step late.
    """
    if not step_size or step_size <= 0:
        raise ValueError(f"config.schedule.step_size must be positive, got {step_size}.")

    def schedule(count):
        exponent = jnp.floor_divide(jnp.asarray(count, jnp.int32), jnp.int32(step_size))
        return init_value * jnp.power(jnp.float32(gamma), exponent.astype(jnp.float32))

    return schedule


def create_schedule(config) -> optax.Schedule:
    """The learning rate per step from `config.schedule` and `config.optimizer.learning_rate`.

    Durations must already be steps (`mtnets.config_utils.resolve_durations`)."""
    sched, lr = config.schedule, config.optimizer.learning_rate
    if sched.name == "constant":
        return optax.constant_schedule(lr)
    if sched.name == "poly":  # lr * (1 - step / num_train_steps) ** power, set every step
        return optax.polynomial_schedule(lr, 0.0, sched.power, config.num_train_steps)
    if sched.name == "step":  # lr * gamma ** (step // step_size), PyTorch's StepLR
        return step_decay(lr, sched.step_size, sched.gamma)
    raise ValueError(
        f"Unknown config.schedule.name {sched.name!r}; choose one of constant, poly, step."
    )


def milestones(config) -> list[int]:
    """The steps at which a staircase schedule changes the learning rate (for the start-up
    summary); [] for the smooth ones."""
    sched = config.schedule
    if sched.name != "step":
        return []
    return list(range(sched.step_size, config.num_train_steps, sched.step_size))


def create_optimizer(config, schedule: optax.Schedule) -> optax.GradientTransformation:
    """The optax optimizer of `config.optimizer`.

    Weight decay is coupled L2 (added to the gradient before Adam/SGD), as in torch.optim.
    """
    opt = config.optimizer
    if opt.name == "adam":
        base = optax.adam(schedule)
    elif opt.name == "sgd":
        base = optax.sgd(schedule, momentum=opt.momentum)
    else:
        raise ValueError(f"Unknown config.optimizer.name {opt.name!r}; choose adam or sgd.")
    decay = optax.add_decayed_weights(opt.weight_decay) if opt.weight_decay else optax.identity()
    return optax.chain(decay, base)
