"""The optimizer and learning-rate schedule of an experiment config (optax; no TensorFlow)."""

from __future__ import annotations

import optax


def create_schedule(config) -> optax.Schedule:
    """The learning rate per step from `config.schedule` and `config.optimizer.learning_rate`."""
    sched, lr = config.schedule, config.optimizer.learning_rate
    if sched.name == "constant":
        return optax.constant_schedule(lr)
    if sched.name == "poly":  # lr * (1 - step / num_train_steps) ** power
        return optax.polynomial_schedule(lr, 0.0, sched.power, config.num_train_steps)
    if sched.name == "step":  # lr * gamma ** (step // step_size), PyTorch's StepLR
        return optax.exponential_decay(lr, sched.step_size, sched.gamma, staircase=True)
    raise ValueError(
        f"Unknown config.schedule.name {sched.name!r}; choose one of constant, poly, step."
    )


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
