"""Cross-stitch / NDDR-CNN initialised from single-task runs (`model.single_task_checkpoints`).

Two single-task runs are written as the trainer writes them (a `TrainState` saved by the
`Checkpointer`), with random values in every array so that each copied leaf is recognisable;
the cross-stitch network built from them must hold exactly those arrays in `backbone_<task>` /
`head_<task>` and its units at the reference's initialisation (alpha on the own task, beta
across, `MTL:models/cross_stitch.py`).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from configs.synthetic.tiny import get_config
from mtnets import config_utils
from mtnets.models import create_model
from mtnets.porting import mtl
from mtnets.porting.mtan import single_task_state_dicts, variables_from_reference
from mtnets.train import checkpointing
from mtnets.train import warm_start as single_task
from mtnets.train.loop import Experiment

TASKS = ("semseg", "depth")
ALPHA, BETA = 0.8, 0.05
STEPS = {"semseg": (3, 7), "depth": (5,)}  # checkpoints written per single-task run


def tiny(data_dir, **model):
    """The tiny synthetic config at 32x32 (the unit networks need sides divisible by 32)."""
    config = get_config()
    config.dataset.data_dir = data_dir
    config.dataset.augmentation = "pascal"  # the one that resizes the stored 32x40 to 32x32
    config.dataset.image_size = (32, 32)
    config.model.backbone = "resnet_small"
    config.model.dilated = True
    config.model.head = "deeplab"
    for key, value in model.items():
        config.model[key] = value
    return config


def unit_config(data_dir, name="cross_stitch", **paths):
    config = tiny(data_dir, name=name, output_stride=8, alpha=ALPHA, beta=BETA)
    config.tasks = TASKS
    config.weighting.fixed.weights = {t: 1.0 for t in TASKS}
    for task, path in paths.items():
        config.model.single_task_checkpoints[task] = path
    return config


def random_like(abstract, seed):
    """Arrays of `abstract`'s shapes and dtypes: floats uniform in [0.5, 1.5), others zero."""
    rng = np.random.default_rng(seed)

    def leaf(x):
        if jnp.issubdtype(x.dtype, jnp.floating):
            return rng.uniform(0.5, 1.5, x.shape).astype(x.dtype)
        return np.zeros(x.shape, x.dtype)

    return jax.tree.map(leaf, abstract)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tfds_data_dir):
    """`{task: (workdir, {step: state})}`: single-task runs saved by the trainer's Checkpointer."""
    out = {}
    for n, task in enumerate(TASKS):
        config = tiny(tfds_data_dir, name="single_task_baseline")
        config.tasks = (task,)
        config.weighting.fixed.weights = {task: 1.0}
        experiment = Experiment(config)
        workdir = str(tmp_path_factory.mktemp(f"single_{task}"))
        checkpointer = checkpointing.Checkpointer(workdir)
        states = {}
        for step in STEPS[task]:
            state = random_like(experiment.abstract_state, seed=10 * n + step)
            state = state.replace(step=np.int32(step))
            states[step] = state
            checkpointer.save(step, jax.device_put(state, experiment.state_shardings), force=True)
        checkpointer.wait()
        checkpointer.close()
        out[task] = (workdir, states)
    return out


@pytest.fixture(scope="module")
def cross_stitch(runs, tfds_data_dir):
    """The cross-stitch experiment pointed at the two workdirs, its `initial_state()`, and a
    fresh initialisation of the same model."""
    config = unit_config(tfds_data_dir, **{t: runs[t][0] for t in TASKS})
    experiment = Experiment(config)
    return experiment, experiment.initial_state(), experiment._init(experiment._seed)


def latest(runs, task):
    workdir, states = runs[task]
    return states[max(states)]


def assert_copied(variables, singles):
    """Every leaf of `backbone_<task>` / `head_<task>` equals the single-task run's `backbone` /
    `heads_<task>` leaf, and every single-task leaf of those two parts was used."""
    for task, single in singles.items():
        for collection in ("params", "batch_stats"):
            for ours, theirs in (
                (f"backbone_{task}", "backbone"),
                (f"head_{task}", f"heads_{task}"),
            ):
                got = flatten_dict(dict(variables[collection][ours]))
                want = flatten_dict(dict(single[collection][theirs]))
                assert got.keys() == want.keys(), (task, collection, ours)
                assert got  # something was compared
                for key in want:
                    np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want[key]))


def unit_values(channels):
    """The reference's initial cross-stitch unit `[T, T, C]`: alpha where i == j, beta else."""
    eye = np.eye(len(TASKS), dtype=np.float32)[:, :, None]
    return np.broadcast_to(eye * np.float32(ALPHA) + (1 - eye) * np.float32(BETA), (2, 2, channels))


# ---------------------------------------------------------------------------------------------
# (a) from our single-task runs' workdirs, through Experiment.initial_state
def test_initial_state_holds_the_single_task_networks(runs, cross_stitch):
    experiment, state, fresh = cross_stitch
    singles = {t: latest(runs, t).variables() for t in TASKS}  # the newest checkpoint of each
    assert_copied(state.variables(), singles)
    parts = {f"{p}_{t}" for p in ("backbone", "head") for t in TASKS}
    units = {k: v for k, v in state.params.items() if k not in parts}
    assert sorted(units) == [f"cross_stitch_layer{s}" for s in range(1, 5)]
    for name, unit in units.items():  # the reference's initialisation, as in a fresh init
        np.testing.assert_array_equal(np.asarray(unit), unit_values(unit.shape[-1]))
        np.testing.assert_array_equal(np.asarray(unit), np.asarray(fresh.params[name]))
    assert set(state.batch_stats) == parts  # cross-stitch units have no statistics
    # Placed like a fresh state, so the compiled train step takes it as it is.
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(fresh), strict=True):
        assert got.sharding == want.sharding and got.dtype == want.dtype
    # The rest of the state is the fresh one (step 0, a new optimizer state).
    assert int(state.step) == 0
    for got, want in zip(
        jax.tree.leaves(state.opt_state), jax.tree.leaves(fresh.opt_state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_a_step_directory_selects_that_checkpoint(runs, cross_stitch, tfds_data_dir):
    experiment, _, _ = cross_stitch
    semseg = os.path.join(runs["semseg"][0], "checkpoints", "3")
    config = unit_config(tfds_data_dir, semseg=semseg, depth=runs["depth"][0])
    singles = single_task.read_single_task_variables(config, experiment.abstract_state.variables())
    variables = single_task.initialise(experiment.abstract_state.variables(), singles)
    assert_copied(variables, {"semseg": runs["semseg"][1][3].variables()})
    assert_copied(variables, {"depth": latest(runs, "depth").variables()})


@pytest.mark.parametrize("partial", [True, False])
def test_restore_variables_reads_params_and_statistics(runs, monkeypatch, partial):
    """With orbax's partial restore, and with an orbax without it (the whole state is read)."""
    if not partial:
        import orbax.checkpoint as ocp

        original = ocp.args.PyTreeRestore

        def without_partial_restore(*args, **kwargs):
            if "partial_restore" in kwargs:
                raise TypeError("unexpected keyword argument 'partial_restore'")
            return original(*args, **kwargs)

        monkeypatch.setattr(ocp.args, "PyTreeRestore", without_partial_restore)
    workdir, states = runs["semseg"]
    for step in (None, 3):
        restored = checkpointing.restore_variables(workdir, step)
        want = states[7 if step is None else step]
        assert sorted(restored) == ["batch_stats", "params"]
        assert jax.tree.structure(restored["params"]) == jax.tree.structure(want.params)
        for got, expected in zip(
            jax.tree.leaves(restored), jax.tree.leaves(want.variables()), strict=True
        ):
            assert isinstance(got, np.ndarray)
            np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------------------------------------
# (b) from MTL single-task state dicts (.npz / .pth.tar)
def mtl_state_dict(config, task, variables):
    """Our single-task variables under the MTL `SingleTaskModel` names, PyTorch layouts and the
    DataParallel prefix, as MTL's `best_model.pth.tar` holds them."""
    single = single_task.single_task_config(config, task)
    out = {}
    for path, value in flatten_dict(variables).items():
        value = np.asarray(value)
        if path[-1] == "kernel":  # Flax [kh, kw, I, O] -> PyTorch [O, I, kh, kw]
            value = value.transpose(3, 2, 0, 1)
        out[f"module.{mtl.torch_key(single, path)}"] = value
    out["module.backbone.bn1.num_batches_tracked"] = np.array(12)  # a buffer torch keeps
    return out


def test_mtl_files_give_what_the_reference_conversion_gives(runs, cross_stitch, tmp_path):
    """A `.npz` of an MTL single-task state dict for semseg, a workdir for depth: the result
    equals `single_task_state_dicts` + `variables_from_reference` (the conversion of the
    reference's assembled cross-stitch state dict, tested against MTL's names) on every leaf."""
    experiment, _, fresh = cross_stitch
    config = experiment.config
    dicts = {t: mtl_state_dict(config, t, latest(runs, t).variables()) for t in TASKS}
    npz = str(tmp_path / "semseg_best_model.npz")
    np.savez(npz, **dicts["semseg"])
    mixed = unit_config(config.dataset.data_dir, semseg=npz, depth=runs["depth"][0])
    singles = single_task.read_single_task_variables(mixed, experiment.abstract_state.variables())
    got = single_task.initialise(jax.device_get(fresh.variables()), singles)
    want = variables_from_reference(config, single_task_state_dicts(config, dicts))
    assert_copied(got, {t: latest(runs, t).variables() for t in TASKS})
    flat_got, flat_want = flatten_dict(got), flatten_dict(want)
    assert flat_got.keys() == flat_want.keys()
    for key, value in flat_want.items():
        np.testing.assert_array_equal(np.asarray(flat_got[key]), np.asarray(value), str(key))


def test_a_torch_file_reads_like_the_npz(runs, cross_stitch, tmp_path):
    torch = pytest.importorskip("torch")
    experiment, _, _ = cross_stitch
    config = experiment.config
    state_dict = mtl_state_dict(config, "depth", latest(runs, "depth").variables())
    path = str(tmp_path / "best_model.pth.tar")
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()}, path)
    mixed = unit_config(config.dataset.data_dir, semseg=runs["semseg"][0], depth=path)
    abstract = experiment.abstract_state.variables()
    singles = single_task.read_single_task_variables(mixed, abstract)
    variables = single_task.initialise(abstract, singles)
    assert_copied(variables, {t: latest(runs, t).variables() for t in TASKS})


def test_nddr_layers_keep_their_initialisation(runs, tfds_data_dir):
    """NDDR-CNN: the task networks are replaced, every `nddr_*` parameter and statistic is the
    model's own (checked on random stand-ins for a fresh init: `initialise` must not touch it)."""
    config = unit_config(tfds_data_dir, name="nddr_cnn", **{t: runs[t][0] for t in TASKS})
    model = create_model(config)
    abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    fresh = random_like(abstract, seed=99)
    singles = single_task.read_single_task_variables(config, abstract)
    got = single_task.initialise(fresh, singles)
    assert_copied(got, {t: latest(runs, t).variables() for t in TASKS})
    nddr = 0
    for collection, tree in fresh.items():
        for name in tree:
            if name.startswith("nddr_"):
                nddr += 1
                assert got[collection][name] is tree[name]
    assert nddr == 10  # five stages, params and batch_stats


# ---------------------------------------------------------------------------------------------
# (c) errors, each naming the task, the path and what is wrong; all before any compilation
def test_missing_or_unknown_tasks_and_other_models_fail_when_the_experiment_is_built(
    runs, tfds_data_dir
):
    semseg = runs["semseg"][0]
    with pytest.raises(ValueError, match=r"gives \['semseg'\] but not \['depth'\]"):
        Experiment(unit_config(tfds_data_dir, semseg=semseg))
    config = unit_config(tfds_data_dir, semseg=semseg, depth=semseg, normals=semseg)
    with pytest.raises(ValueError, match=r"task\(s\) \['normals'\] that are not in config.tasks"):
        config_utils.validate(config)
    config = unit_config(tfds_data_dir, semseg=semseg, depth=semseg)
    config.model.name = "multi_task_baseline"
    with pytest.raises(ValueError, match="config.model.name is 'multi_task_baseline'"):
        config_utils.validate(config)
    config = unit_config(tfds_data_dir, semseg=semseg, depth=semseg)
    config.model.pretrained = "/imagenet/resnet.pth"
    with pytest.raises(ValueError, match="either config.model.pretrained or"):
        config_utils.validate(config)
    assert single_task.checkpoint_paths(unit_config(tfds_data_dir)) == {}  # all None: scratch


def read(config, cross_stitch):
    experiment = cross_stitch[0]
    return single_task.read_single_task_variables(config, experiment.abstract_state.variables())


def test_bad_paths_are_errors_naming_task_and_path(runs, cross_stitch, tmp_path, tfds_data_dir):
    semseg = runs["semseg"][0]
    missing = str(tmp_path / "nowhere")
    config = unit_config(tfds_data_dir, semseg=semseg, depth=missing)
    with pytest.raises(FileNotFoundError, match=f"single_task_checkpoints.depth='{missing}'"):
        read(config, cross_stitch)
    empty = str(tmp_path / "empty_workdir")
    os.makedirs(os.path.join(empty, "checkpoints"))
    config = unit_config(tfds_data_dir, semseg=semseg, depth=empty)
    with pytest.raises(FileNotFoundError, match=r"depth='.*empty_workdir'.*no checkpoint in"):
        read(config, cross_stitch)
    config = unit_config(tfds_data_dir, semseg=semseg, depth=str(tmp_path))  # no checkpoints/
    with pytest.raises(FileNotFoundError, match=r"nami0'.*no checkpoint in .*nami0/checkpoints"):
        read(config, cross_stitch)
    assert not os.path.exists(tmp_path / "checkpoints")  # reading creates nothing
    with pytest.raises(FileNotFoundError, match="No checkpoint directory .* not the workdir"):
        checkpointing.restore_variables(str(tmp_path))
    config = unit_config(tfds_data_dir, semseg=os.path.join(semseg, "checkpoints", "4"))
    config.model.single_task_checkpoints.depth = semseg
    with pytest.raises(FileNotFoundError, match=r"step 4 .* saved steps are \[3, 7\]"):
        read(config, cross_stitch)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    config = unit_config(tfds_data_dir, semseg=semseg, depth=str(text))
    with pytest.raises(ValueError, match="notes.txt' is a file but not a checkpoint"):
        read(config, cross_stitch)


def test_another_tasks_run_is_an_error(runs, cross_stitch, tfds_data_dir):
    semseg = runs["semseg"][0]
    config = unit_config(tfds_data_dir, semseg=semseg, depth=semseg)
    with pytest.raises(
        ValueError, match=r"(?s)depth=.*no params/heads_depth \(it has backbone, heads_semseg\)"
    ):
        read(config, cross_stitch)


def test_another_backbone_is_an_error_naming_the_variable(runs, tfds_data_dir, tmp_path):
    """ResNet-18 task networks from resnet_small single-task runs: every shape differs."""
    config = unit_config(tfds_data_dir, **{t: runs[t][0] for t in TASKS})
    config.model.backbone = "resnet18"
    abstract = jax.eval_shape(
        create_model(config).init, jax.random.key(0), jnp.zeros((1, 32, 32, 3))
    )
    pattern = (
        r"(?s)semseg='.*' does not fit task 'semseg' of cross_stitch on resnet18 .*\n"
        r".*params/backbone/\S+: shape \(\d+,( \d+,)*( \d+)?\), the model has \(\d+"
    )
    with pytest.raises(ValueError, match=pattern):
        single_task.read_single_task_variables(config, abstract)
    # The same through the MTL file route: the state dict lacks ResNet-18's second blocks.
    small = unit_config(tfds_data_dir)
    npz = str(tmp_path / "semseg.npz")
    np.savez(npz, **mtl_state_dict(small, "semseg", latest(runs, "semseg").variables()))
    config.model.single_task_checkpoints.semseg = npz
    with pytest.raises(ValueError, match=r"semseg.npz' is not the MTL single-task model"):
        single_task.read_single_task_variables(config, abstract)


# ---------------------------------------------------------------------------------------------
def test_configs_take_the_field_in_the_launch_string():
    from configs.nyud.nddr_cnn import get_config as nyud_nddr
    from configs.pascal.cross_stitch import get_config as pascal_cross_stitch

    assert single_task.checkpoint_paths(nyud_nddr()) == {}
    config = nyud_nddr(
        "model.single_task_checkpoints.semseg=/runs/semseg,"
        "model.single_task_checkpoints.depth=/runs/depth"
    )
    assert single_task.checkpoint_paths(config) == {
        "semseg": "/runs/semseg",
        "depth": "/runs/depth",
    }
    config = pascal_cross_stitch("model.single_task_checkpoints.sal=/runs/sal")
    with pytest.raises(ValueError, match=r"gives \['sal'\] but not \['semseg', 'human_parts'"):
        config_utils.validate(config)


def test_the_command_line_sets_the_field(monkeypatch):
    """As train.py parses it: `--config.model.single_task_checkpoints.<task>=<path>`."""
    from absl import flags
    from ml_collections import config_flags

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    argv = [
        "train.py",
        f"--config={os.path.join(root, 'configs', 'nyud', 'cross_stitch.py')}",
        "--config.model.single_task_checkpoints.semseg=/runs/semseg",
        "--config.model.single_task_checkpoints.depth=/runs/depth.pth.tar",
    ]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True)
    monkeypatch.setattr("sys.argv", argv)  # config_flags reads the overrides from sys.argv
    values(argv)
    paths = single_task.checkpoint_paths(values.config)
    assert paths == {"semseg": "/runs/semseg", "depth": "/runs/depth.pth.tar"}
