"""Preprocessing ops and recipes: the registry, the recipe strings, the seeds each random op
draws from, the dataset quirks registered beside their builders, and recipe strings in
configs."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from configs.synthetic.tiny import get_config
from mtnets import sharding
from mtnets.data import augment, ops
from mtnets.data.pipeline import InputPipeline


def example(rng, h=6, w=8):
    normals = rng.normal(size=(h, w, 3)).astype(np.float32)
    return {
        "image": tf.constant(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)),
        "semseg": tf.constant(rng.integers(0, 21, (h, w, 1)).astype(np.uint8)),
        "normals": tf.constant(normals / np.linalg.norm(normals, axis=-1, keepdims=True)),
    }


def numpy(fields):
    return {k: v.numpy() for k, v in fields.items()}


def test_a_recipe_string_parses_into_ops_with_literal_arguments():
    steps = ops.parse(" flip_lr | random_scale_crop(1.0, scale_max=1.25)|fixed_resize(4, 6) ")
    assert [s.op.name for s in steps] == ["flip_lr", "random_scale_crop", "fixed_resize"]
    assert [s.args for s in steps] == [(), (1.0,), (4, 6)]
    assert steps[1].kwargs == {"scale_max": 1.25}
    assert [s.op.draws for s in steps] == [0, 1, 0]
    assert ops.parse("") == []


@pytest.mark.parametrize(
    "recipe, words",
    [
        ("flip_lr|flip_ud", r"Unknown preprocessing op 'flip_ud'.*fixed_resize, .*flip_lr"),
        ("fixed_resize(size)", r"arguments of step 'fixed_resize\(size\)' .* must be literals"),
        (
            "fixed_resize(4)",
            r"Bad arguments in step 'fixed_resize\(4\)'.*'width'; op fixed_resize\(height, width\)",
        ),
        ("random_flip_lr(0.5, 2)", r"Bad arguments in step 'random_flip_lr\(0.5, 2\)'"),
        ("flip_lr(", r"Cannot parse step 'flip_lr\('"),
        ("a.b", r"Cannot parse step 'a.b'"),
    ],
)
def test_bad_recipe_strings_name_the_step(recipe, words):
    with pytest.raises(ValueError, match=words):
        ops.parse(recipe)


def test_an_op_name_is_registered_once():
    with pytest.raises(ValueError, match="'flip_lr' is already registered"):
        ops.register_op("flip_lr")(lambda fields: fields)


def test_each_random_op_draws_from_its_own_part_of_the_seed():
    """Two flips with p = 1/2: the example seed split in two, the first flip decided by the
    first half, the second by the second; whether each flipped is visible in the image."""
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    outcomes = set()
    for s in range(16):
        seed = tf.constant([s, 1])
        first, second = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        flips = [float(tf.random.stateless_uniform([], k)) < 0.5 for k in (first, second)]
        out = ops.apply("random_flip_lr|random_flip_lr", {"image": tf.constant(image)}, seed)
        expected = image[:, ::-1] if flips[0] != flips[1] else image
        np.testing.assert_array_equal(out["image"].numpy(), expected)
        outcomes.add(tuple(flips))
    assert len(outcomes) == 4  # all four combinations occur: the two draws are independent
    with pytest.raises(ValueError, match="needs a seed"):
        ops.apply("random_flip_lr", {"image": tf.constant(image)})


def test_an_op_that_does_nothing_still_takes_its_draws():
    """random_flip_lr(0.0) never flips but keeps the seed of the ops after it in place."""
    fields = example(np.random.default_rng(0))
    for s in range(4):
        seed = tf.constant([s, 2])
        _, second = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        out = ops.apply("random_flip_lr(0.0)|random_flip_lr", dict(fields), seed)
        np.testing.assert_array_equal(
            out["semseg"].numpy(), augment.random_flip(dict(fields), second)["semseg"].numpy()
        )


def test_ops_correct_labels_by_their_task():
    """flip_lr negates the normals' x (the task's rule), not the image or the class map."""
    fields = example(np.random.default_rng(1))
    out = numpy(ops.apply("flip_lr", dict(fields)))
    src = numpy(fields)
    np.testing.assert_array_equal(out["image"], src["image"][:, ::-1])
    np.testing.assert_array_equal(out["semseg"], src["semseg"][:, ::-1])
    np.testing.assert_array_equal(out["normals"], src["normals"][:, ::-1] * [-1, 1, 1])


def test_pascal_quirks_apply_to_tasks_unlabelled_when_empty():
    """The loader's zeros for a map without a person, and AddIgnoreRegions after the
    transforms: an empty map is all ignore again, a labelled one keeps its values; other
    tasks' 255s stay ignore."""
    none = np.full((4, 4, 1), 255, np.uint8)
    some = np.array([[0, 3], [255, 1]], np.uint8).repeat(2, 0).repeat(2, 1)[..., None]
    semseg = np.full((4, 4, 1), 255, np.uint8)
    for parts in (none, some):
        fields = {"human_parts": tf.constant(parts), "semseg": tf.constant(semseg)}
        zeroed = numpy(ops.apply("zero_unlabelled_maps", fields))
        np.testing.assert_array_equal(zeroed["human_parts"], np.where(parts == 255, 0, parts))
        np.testing.assert_array_equal(zeroed["semseg"], semseg)
        back = numpy(ops.apply("zero_unlabelled_maps|ignore_empty_maps", fields))
        expected = none if parts is none else np.where(parts == 255, 0, parts)
        np.testing.assert_array_equal(back["human_parts"], expected)


def test_the_four_recipes_are_registered_and_parse():
    class Dataset:
        scale_min, scale_max, flip = 1.0, 1.5, False

    context = ops.RecipeContext((8, 10), Dataset())
    for name in ("synthetic", "nyud", "pascal", "lorenmt", "none"):
        recipe = ops.get_recipe(name)
        for strings in (recipe.train, recipe.eval, recipe.canvas_eval):
            ops.parse(strings(context))
    assert [n for n, r in ops.RECIPES.items() if r.resizes] == ["pascal"]
    assert ops.get_recipe("synthetic").train(context) == (
        "random_scale_crop(1.0, 1.5)|random_flip_lr(0.0)"
    )
    assert "fixed_resize(8, 10)" in ops.get_recipe("pascal").train(context)


def test_an_unknown_augmentation_lists_the_recipes_and_ops():
    with pytest.raises(ValueError, match=r"augmentation 'pascl'; choose one of .*pascal.*flip_lr"):
        ops.get_recipe("pascl")
    with pytest.raises(ValueError, match="Unknown preprocessing op 'flip'"):
        ops.get_recipe("flip|random_flip_lr")


def test_a_recipe_string_in_the_config_trains_with_its_ops(tfds_data_dir):
    """augmentation = "flip_lr": the training stream of "none" (same order, as it depends on
    the seed only) mirrored, normals' x negated; evaluation as stored."""
    config = get_config()
    config.dataset.data_dir = tfds_data_dir
    streams = {}
    for augmentation in ("none", "flip_lr"):
        config.dataset.augmentation = augmentation
        pipeline = InputPipeline(config, sharding.create_mesh(-1))
        streams[augmentation] = list(
            itertools.islice(pipeline.train_dataset().as_numpy_iterator(), 2)
        )
        streams[augmentation + "/eval"] = next(pipeline.eval_dataset().as_numpy_iterator())
    for plain, flipped in zip(streams["none"], streams["flip_lr"], strict=True):
        np.testing.assert_array_equal(flipped["image"], plain["image"][:, :, ::-1])
        np.testing.assert_array_equal(flipped["semseg"], plain["semseg"][:, :, ::-1])
        np.testing.assert_array_equal(
            flipped["normals"], plain["normals"][:, :, ::-1] * np.float32([-1, 1, 1])
        )
    for key, value in streams["none/eval"].items():
        np.testing.assert_array_equal(streams["flip_lr/eval"][key], value)
