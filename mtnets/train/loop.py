"""`train_and_evaluate(config, workdir)`: the whole training run, importable and tested.

Sections: set-up (mesh, data, model, optimizer, state), restore, the step loop (log, evaluate,
checkpoint), and the final evaluation. Resuming is automatic: if `<workdir>/checkpoints` holds
a checkpoint, training continues from its step with the same data stream and keys.
"""

from __future__ import annotations

import math
import os
import signal

import jax
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions

from mtnets import config_utils, sharding, weights
from mtnets.data.builders.class_names import class_names
from mtnets.data.pipeline import InputPipeline
from mtnets.models import create_model, input_divisor
from mtnets.tasks import task_specs
from mtnets.train import checkpointing, warm_start, workdir_lock
from mtnets.train.evaluate import evaluate, prediction_picture, with_delta_m, write_results
from mtnets.train.optim import create_optimizer, create_schedule, milestones
from mtnets.train.state import create_train_state
from mtnets.train.step import compile_config_steps, mean_scalars, trained_tasks
from mtnets.visualize import save_png
from mtnets.weighting import create_weighting


class Experiment:
    """Everything built from a config that both training and evaluation use.

    The cheap checks come first (names of tasks, model, optimizer, weighting; the model is
    built), then the mesh and the data, and only then are the steps compiled, so a bad config
    fails in seconds with the field named.
    """

    def __init__(self, config, *, initial_weights: bool = True):
        config_utils.validate(config)
        # A missing weight file fails here, first; evaluation restores a checkpoint instead.
        self.weight_source = weights.weight_source(config) if initial_weights else "checkpoint"
        self.tasks = trained_tasks(config)  # main + auxiliary
        self.specs = task_specs(config.tasks, config.dataset.name)  # evaluated: the main tasks
        self.model = create_model(config)
        self.mesh = sharding.create_mesh(config.num_devices, config.model_parallelism)
        self.data = InputPipeline(config, self.mesh)
        _check_input_size(config, self.data.image_shape)
        # Durations in epochs become steps from what the training stream really reads.
        self.examples_per_epoch = self.data.examples_per_epoch()
        self.steps_per_epoch = config_utils.steps_per_epoch(
            self.examples_per_epoch, config.batch_size
        )
        self.config = config = config_utils.resolve_durations(config, self.examples_per_epoch)
        self.schedule = create_schedule(config)
        self.tx = create_optimizer(config, self.schedule)
        self.weighting = create_weighting(config, self.tasks, steps_per_epoch=self.steps_per_epoch)
        # The seed is an argument, not a constant of the program, so that runs that differ
        # only in their seed share one compiled `init` (and its persistent-cache entry).
        init = jax.tree_util.Partial(
            create_train_state, self.model, self.tx, self.weighting, self.data.image_shape
        )
        self._seed = np.int32(config.seed)
        abstract = jax.eval_shape(init, self._seed)
        self.state_shardings = sharding.state_shardings(self.mesh, abstract)
        self._init = jax.jit(init, out_shardings=self.state_shardings)
        self.abstract_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            abstract,
            self.state_shardings,
        )
        self.train_step, self.eval_step = compile_config_steps(
            config, self.model, self.tx, self.weighting, self.mesh, self.state_shardings
        )

    def initial_state(self):
        """A fresh state with the warm starts of the config (`mtnets.train.warm_start`): the
        task networks of cross-stitch / NDDR-CNN from `config.model.single_task_checkpoints`
        (read and checked before `init` compiles), or the ImageNet backbone of
        `config.model.pretrained`."""
        abstract = self.abstract_state.variables()
        singles = warm_start.read_single_task_variables(self.config, abstract)  # fails early
        state = self._init(self._seed)
        return warm_start.warm_start(self.config, state, self.state_shardings, singles)

    def evaluate(
        self, state, workdir: str, step: int, writer=None, *, final: bool = True
    ) -> dict[str, float]:
        """Metrics over the eval split, written to `eval_<step>.json`, plus a PNG of samples.

        The tasks' host-side measures (`Task.host_metric`: the edge benchmark's ODS/OIS/AP,
        slow) run when `config.eval.edge_benchmark` is "all", or "final" and this is a final
        evaluation (the last train step, eval.py). Delta_m is added when
        `config.eval.delta_m_references` names single-task results.
        """
        split = self.config.dataset.eval_split
        host_metrics = self._host_metrics(final)
        logging.info(
            "%s of step %d on %s (%d images)%s.",
            "Final evaluation" if final else "Evaluation",
            step,
            split,
            self.data.num_examples(split),
            f", with the host-side measures of {', '.join(host_metrics)}" if host_metrics else "",
        )
        results, samples = evaluate(
            self.eval_step,
            state,
            self.data.eval_batches(),
            num_images=self.config.num_eval_images,
            host_metrics=host_metrics,
            num_batches=self._num_eval_batches(),
        )
        results = with_delta_m(results, self.config.eval.delta_m_references, self.config.tasks)
        write_results(workdir, step, results)
        picture = prediction_picture(
            samples,
            self.config.tasks,
            self.config.dataset.image_normalization,
            class_names(self.config.dataset.name),
        )
        if jax.process_index() == 0:
            save_png(os.path.join(workdir, f"predictions_{step}.png"), picture)
        if writer is not None:
            writer.write_scalars(step, {f"eval/{k}": v for k, v in results.items()})
            writer.write_images(step, {"eval/predictions": picture[None]})
        return results

    def _num_eval_batches(self) -> int:
        """Batches of one evaluation pass (each process reads its share of the split)."""
        examples = self.data.num_examples(self.config.dataset.eval_split)
        per_process = math.ceil(examples / jax.process_count())
        return math.ceil(per_process / self.data.local_batch_size)

    def _host_metrics(self, final: bool) -> dict:
        """`{task: empty scorer}` of the evaluated tasks that measure on the host, when this
        evaluation runs them."""
        mode = self.config.eval.edge_benchmark
        if not (mode == "all" or (mode == "final" and final)):
            return {}
        scorers = {name: task.host_metric(self.config) for name, task in self.specs.items()}
        return {name: scorer for name, scorer in scorers.items() if scorer is not None}


def _check_input_size(config, image_shape) -> None:
    divisor = input_divisor(config)
    height, width = image_shape[:2]
    if height % divisor or width % divisor:
        raise ValueError(
            f"config.model.name={config.model.name!r} needs an input height and width divisible "
            f"by {divisor}, but {config.dataset.name} gives {height}x{width}; set "
            "config.dataset.image_size to a size it can take."
        )


class _LibraryInfoFilter:
    """Drops the INFO lines of libraries that narrate every file they write (orbax, TFDS)."""

    NOISY = ("/orbax/", "/tensorflow_datasets/", "/jax/_src/xla_bridge", "/tensorstore/")

    def filter(self, record) -> bool:
        return record.levelno >= 30 or not any(p in record.pathname for p in self.NOISY)


def quiet_library_logs() -> None:
    """Keeps the console to our progress, losses and results (warnings still pass)."""
    logging.get_absl_handler().addFilter(_LibraryInfoFilter())


class _Preemption:
    """Turns SIGTERM and a first Ctrl-C (SIGINT) into a flag the loop checks, so that it saves
    the current step before it exits. A second Ctrl-C raises KeyboardInterrupt at once: nothing
    more is saved, and what is on disk stays readable (orbax moves a checkpoint into place only
    once it is complete)."""

    SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C (SIGINT)"}

    def __init__(self):
        self.requested: str | None = None  # the name of the signal that asked to stop
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.requested:
            logging.warning("Second Ctrl-C: stopping at once, without saving.")
            raise KeyboardInterrupt
        self.requested = self.SIGNALS[signum]
        logging.warning(
            "%s received: saving a checkpoint of the current step and stopping%s.",
            self.requested,
            " (Ctrl-C again stops at once, without saving)" if signum == signal.SIGINT else "",
        )

    def restore(self):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def train_and_evaluate(config, workdir: str):
    """Trains `config` in `workdir` (resuming from its latest readable checkpoint) and
    evaluates. Returns the final train state.

    The workdir is locked first (`mtnets.train.workdir_lock`): a second trainer on it is
    refused with an error naming the holder."""
    # The checks that need nothing built (names, fields, weight files) come before the lock,
    # so a bad config leaves no trace in the workdir.
    config_utils.validate(config)
    weights.weight_source(config)
    with workdir_lock.hold(workdir, jax.process_index()):
        return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config, workdir: str):
    # ----------------------------------------------------------------------------------------
    # Set-up: everything is checked and shaped before anything heavy is compiled.
    experiment = Experiment(config)
    config = experiment.config  # durations resolved to steps
    if jax.process_index() == 0:
        _log_run_summary(experiment)
    checkpoint_bytes = checkpointing.state_bytes(experiment.abstract_state)
    checkpointing.check_workdir(workdir, checkpoint_bytes * (config.keep_checkpoints + 2))
    writer, per_step_writer = _create_writers(workdir)
    checkpointer = checkpointing.Checkpointer(workdir, max_to_keep=config.keep_checkpoints)

    # ----------------------------------------------------------------------------------------
    # Restore or initialise.
    state = checkpointer.restore_latest(experiment.abstract_state)
    if state is not None:
        logging.info(
            "Resumed from the checkpoint of step %d in %s.", int(state.step), checkpointer.directory
        )
    else:
        state = experiment.initial_state()
        writer.write_hparams(_flat_hparams(config))
    initial_step = int(state.step)
    total = config.num_train_steps
    logging.info(
        "Training %s from step %d to %d on %d device(s), global batch %d.",
        config.model.name,
        initial_step,
        total,
        experiment.mesh.devices.size,
        config.batch_size,
    )

    # ----------------------------------------------------------------------------------------
    # The step loop.
    batches = experiment.data.train_batches(initial_step)
    progress = periodic_actions.ReportProgress(
        num_train_steps=total, writer=writer, every_steps=config.log_every_steps
    )
    preemption = _Preemption()
    history = _History(initial_step)
    try:
        for step in range(initial_step + 1, total + 1):
            with jax.profiler.StepTraceAnnotation("train", step_num=step):
                state, scalars = experiment.train_step(state, next(batches))
            history.append(scalars, per_step_writer)
            progress(step)
            if step % config.log_every_steps == 0 or step == total:
                _log_scalars(writer, step, history.flush(), experiment)
            if step % config.eval_every_steps == 0 or step == total:
                with progress.timed("eval"):
                    experiment.evaluate(state, workdir, step, writer, final=step == total)
            if step % config.checkpoint_every_steps == 0 or step == total or preemption.requested:
                history.check_finite()  # never save a state that a bad loss has reached
                checkpointer.save(step, state, force=True)
            if preemption.requested:
                logging.warning(
                    "Stopped at step %d after %s; its checkpoint is saved in %s.",
                    step,
                    preemption.requested,
                    checkpointer.directory,
                )
                break
    finally:
        preemption.restore()
        checkpointer.wait()
        checkpointer.close()
        writer.flush()
        per_step_writer.flush()
    if not preemption.requested and total > initial_step:
        logging.info(
            "Done: step %d; results in %s, pictures in %s.",
            total,
            os.path.join(workdir, f"eval_{total}.json"),
            os.path.join(workdir, f"predictions_{total}.png"),
        )
    return state


def _log_run_summary(experiment) -> None:
    """One block that a run can be checked against (docs/reproduce.md): duration in epochs and
    steps, schedule milestones, where the weights start, and the loss weights."""
    config, per_epoch = experiment.config, experiment.steps_per_epoch
    sched = config.schedule
    schedule = f"{sched.name}, learning rate {config.optimizer.learning_rate:g}"
    if sched.name == "poly":
        schedule += f" decaying every step with power {sched.power:g} to 0 at the last step"
    elif sched.name == "step":
        shown = ", ".join(str(m) for m in milestones(config)) or "none within the run"
        schedule += f" times {sched.gamma:g} at steps {shown}"
    lines = [
        f"Run summary of {config.model.name} on {config.dataset.name}:",
        f"  epoch: {experiment.examples_per_epoch} training examples, {per_epoch} steps of "
        f"{config.batch_size}",
        f"  training: {config.num_train_steps} steps = {config.num_train_steps / per_epoch:g} "
        f"epochs; evaluation every {config.eval_every_steps} steps, checkpoint every "
        f"{config.checkpoint_every_steps} steps",
        f"  schedule: {schedule}",
        f"  weights: {experiment.weight_source}",
        f"  loss weights: {_loss_weights(config, experiment.tasks)}",
    ]
    logging.info("\n".join(lines))


def _loss_weights(config, tasks) -> str:
    """The strategy (each member of a chain) with its settings, and the tasks it weighs."""
    members = []
    for name in config.weighting.name.split("+"):
        settings = config.weighting[name].to_dict() if name in config.weighting else {}
        members.append(f"{name} {settings}" if settings else name)
    return f"{' + '.join(members)} over {', '.join(tasks)}"


class _History:
    """Per-step scalars since the last log: averaged for logging, checked for NaN/Inf, and the
    loss weights written every step (one step behind, so the host never waits on the step in
    flight)."""

    def __init__(self, last_step: int):
        self.first_step = last_step + 1
        self.steps: list = []

    def append(self, scalars, per_step_writer) -> None:
        if self.steps:
            step = self.first_step + len(self.steps) - 1
            previous = jax.device_get(self.steps[-1])
            per_step_writer.write_scalars(
                step, {f"train/{k}": v for k, v in previous.items() if k.startswith("weight/")}
            )
        self.steps.append(scalars)

    def check_finite(self) -> None:
        """Raises naming the first step and task whose loss is NaN or infinite."""
        for offset, scalars in enumerate(jax.device_get(self.steps)):
            # Per-task losses first: they say which task went bad; the total follows from them.
            names = sorted((n for n in scalars if n.startswith("loss")), key=lambda n: "/" not in n)
            for name in names:
                value = scalars[name]
                if not np.isfinite(value):
                    task = name.partition("/")[2] or "the weighted total"
                    raise FloatingPointError(
                        f"Step {self.first_step + offset}: the loss of task {task!r} is "
                        f"{float(value)}. Training stopped; the checkpoints written before this "
                        "step are kept. Lower the learning rate or check the data."
                    )

    def flush(self) -> list:
        self.check_finite()
        steps, self.steps = self.steps, []
        self.first_step += len(steps)
        return steps


def _create_writers(workdir: str):
    """The console + TensorBoard writer (process 0 only writes summaries), and a
    TensorBoard-only writer for what is written every step."""
    if jax.process_index() > 0:
        quiet = metric_writers.MultiWriter([])
        return metric_writers.create_default_writer(None, just_logging=True), quiet
    writer = metric_writers.create_default_writer(workdir, asynchronous=True)
    return writer, metric_writers.AsyncMultiWriter([metric_writers.SummaryWriter(workdir)])


def _log_scalars(writer, step, history, experiment):
    """Writes train scalars averaged since the last log."""
    scalars = mean_scalars(history)
    scalars["learning_rate"] = float(experiment.schedule(step - 1))
    writer.write_scalars(step, {f"train/{k}": v for k, v in scalars.items()})
    logging.info(
        "step %d: loss %.4f (%s)",
        step,
        scalars["loss"],
        ", ".join(f"{t} {scalars[f'loss/{t}']:.4f}" for t in experiment.specs),
    )


def _flat_hparams(config) -> dict:
    flat = {}

    def walk(prefix, node):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if hasattr(value, "items"):
                walk(name + ".", value)
            elif isinstance(value, int | float | str | bool):
                flat[name] = value
            else:
                flat[name] = str(value)

    walk("", config)
    return flat


def evaluate_checkpoint(config, workdir: str, step: int | None = None) -> dict[str, float]:
    """Restores checkpoint `step` (default: the latest) of `workdir`, evaluates it, and writes
    `eval_<step>.json` and `predictions_<step>.png` there."""
    logging.info("Evaluating the run in %s: building the data and the model.", workdir)
    experiment = Experiment(config, initial_weights=False)
    checkpointer = checkpointing.Checkpointer(workdir, read_only=True)
    if checkpointer.latest_step() is None:
        raise FileNotFoundError(
            f"No checkpoint in {checkpointer.directory}; train first with "
            f"`python train.py --config ... --workdir {workdir}`."
        )
    logging.info(
        "Restoring the checkpoint of step %s from %s.",
        checkpointer.latest_step() if step is None else step,
        checkpointer.directory,
    )
    state = checkpointer.restore(experiment.abstract_state, step)
    step = int(state.step)
    results = experiment.evaluate(state, workdir, step)
    logging.info("Evaluated step %d: %s", step, results)
    return results
