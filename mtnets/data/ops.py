"""Preprocessing ops registered by name, and the recipes composed of them.

An op is a function of the fields of one example (`image` plus one label per task, each an
`[H, W, C]` TensorFlow tensor, see `mtnets.data.augment`) that returns new fields. Ops are
registered under a name (`register_op`) and composed from a recipe string, e.g.

    "random_flip_lr|random_centre_zoom(1.0, 1.2, 1.5)|project_labels|to_uint8_range"

where each `|`-separated step is an op's name, optionally called with literal arguments
(numbers, strings, tuples, keywords). An op never tests a task's name: whatever it does to a
label it asks that label's task (`Task.interpolation`, `flipped`, `rotated`, `zoomed`,
`project`, `fill`, `unlabelled_when_empty`), so a new task needs no new op.

Randomness is stateless. A random op states how many independent draws it makes (`draws`);
running a recipe splits the example's seed into one seed per draw of all its random ops, in
the order they appear, and hands each op its own (a tuple of `draws` seeds, first argument
after the fields). An op that happens to do nothing for its arguments (a flip with p = 0) still
takes its draws, so the other ops' draws do not depend on it.

A recipe (`Recipe`, `register_recipe`) names the train and evaluation op sequences of one
dataset's reference; `config.dataset.augmentation` selects one by name, or gives a recipe
string of its own (training only). The dataset-specific recipes and ops (the quirks of a
reference's loader) are registered beside their TFDS builder (`mtnets.data.builders.*`).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

from mtnets.data import augment


@dataclasses.dataclass(frozen=True)
class Op:
    """A registered op: `fn(fields, *args)`, or `fn(fields, seeds, *args)` if `draws` > 0."""

    name: str
    fn: Callable
    draws: int = 0


OPS: dict[str, Op] = {}


def register_op(name: str, draws: int = 0) -> Callable[[Callable], Callable]:
    """Decorator: registers `fn` as the op `name` that makes `draws` random draws."""

    def decorate(fn: Callable) -> Callable:
        if name in OPS and OPS[name].fn is not fn:
            raise ValueError(f"A preprocessing op named {name!r} is already registered.")
        OPS[name] = Op(name, fn, draws)
        return fn

    return decorate


def get_op(name: str) -> Op:
    _load_dataset_ops()
    if name not in OPS:
        raise ValueError(
            f"Unknown preprocessing op {name!r}; registered ops: {', '.join(sorted(OPS))}."
        )
    return OPS[name]


@dataclasses.dataclass(frozen=True)
class Step:
    """One op of a recipe with its arguments."""

    op: Op
    args: tuple = ()
    kwargs: Mapping = dataclasses.field(default_factory=dict)

    def __call__(self, fields: dict, seeds: Sequence = ()) -> dict:
        if self.op.draws:
            return self.op.fn(fields, tuple(seeds), *self.args, **self.kwargs)
        return self.op.fn(fields, *self.args, **self.kwargs)


def parse(recipe: str) -> list[Step]:
    """The steps of a recipe string (`"op|op(1.5, 2)|op(size=(4, 4))"`; "" is no step).
    Arguments are Python literals; an unknown op, a non-literal argument or arguments the op
    does not take raise a ValueError that names the step."""
    steps = []
    for text in (part.strip() for part in recipe.split("|")):
        if text:
            steps.append(_parse_step(text, recipe))
    return steps


def _parse_step(text: str, recipe: str) -> Step:
    where = f"step {text!r} of recipe {recipe!r}"
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ValueError(f"Cannot parse {where}: write name or name(literal, ...).") from None
    call = node if isinstance(node, ast.Call) else None
    name_node = call.func if call else node
    if not isinstance(name_node, ast.Name):
        raise ValueError(f"Cannot parse {where}: write name or name(literal, ...).")
    op = get_op(name_node.id)
    try:
        args = tuple(ast.literal_eval(a) for a in call.args) if call else ()
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords} if call else {}
    except ValueError:
        raise ValueError(
            f"The arguments of {where} must be literals (numbers, strings, tuples)."
        ) from None
    leading = ("fields", "seeds") if op.draws else ("fields",)
    try:
        inspect.signature(op.fn).bind(*leading, *args, **kwargs)
    except TypeError as error:
        signature = _public_signature(op)
        raise ValueError(f"Bad arguments in {where}: {error}; op {op.name}{signature}.") from None
    return Step(op, args, kwargs)


def _public_signature(op: Op) -> str:
    """The op's signature without the fields (and seeds) every op takes."""
    params = list(inspect.signature(op.fn).parameters.values())[2 if op.draws else 1 :]
    return str(inspect.Signature([p.replace(annotation=p.empty) for p in params]))


def run(steps: Sequence[Step], fields: dict, seed=None) -> dict:
    """`fields` through `steps`; `seed` (`[2]`) is split into one seed per random draw."""
    draws = sum(step.op.draws for step in steps)
    seeds = []
    if draws:
        if seed is None:
            raise ValueError("A recipe with random ops needs a seed.")
        seeds = tf.unstack(tf.random.experimental.stateless_split(seed, draws))
    for step in steps:
        mine, seeds = seeds[: step.op.draws], seeds[step.op.draws :]
        fields = step(fields, mine)
    return fields


def apply(recipe: str, fields: dict, seed=None) -> dict:
    """`run(parse(recipe), fields, seed)`."""
    return run(parse(recipe), fields, seed)


# ===========================================================================================
# Recipes.
@dataclasses.dataclass(frozen=True)
class RecipeContext:
    """What a recipe's strings may depend on: the model's input size `(h, w)` and the
    config's `dataset` section."""

    size: tuple[int, int]
    dataset: object = None


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The train and evaluation op sequences of one dataset's reference.

    train, eval: context -> recipe string (the whole example at the input size).
    canvas_eval: context -> recipe string for evaluation with `config.dataset.eval_canvas`:
      the labels stay at the stored size (the pipeline pads them to the canvas afterwards),
      only the image is brought to the input size.
    resizes: whether the recipe brings images of another stored size to the input size.
    """

    train: Callable[[RecipeContext], str]
    eval: Callable[[RecipeContext], str] = lambda ctx: ""
    canvas_eval: Callable[[RecipeContext], str] = lambda ctx: canvas_eval_recipe(ctx.size)
    resizes: bool = False


RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str, recipe: Recipe) -> Recipe:
    RECIPES[name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    """The recipe registered as `name`; any other string is read as a recipe string (e.g.
    `"flip_lr|random_scale_crop(1.0, 1.2)"`) that trains with those ops and evaluates on the
    examples as stored."""
    _load_dataset_ops()
    if name in RECIPES:
        return RECIPES[name]
    try:
        parse(name)
    except ValueError:
        if name.isidentifier():  # a misspelt recipe more likely than a misspelt op
            raise ValueError(
                f"Unknown config.dataset.augmentation {name!r}; choose one of "
                f"{', '.join(RECIPES)}, or write a recipe string of the ops "
                f"{', '.join(sorted(OPS))} (e.g. 'flip_lr|random_scale_crop(1.0, 1.5)')."
            ) from None
        raise
    return Recipe(train=lambda ctx: name)


def canvas_eval_recipe(size, labels: str = "project_labels") -> str:
    """Labels made valid at their stored size (`labels`), the image FixedResized to `size`."""
    return f"{labels}|fixed_resize_image({size[0]}, {size[1]})|to_uint8_range"


def _load_dataset_ops():
    """The dataset-specific ops and recipes are registered by their builders' modules."""
    import mtnets.data.builders  # noqa: F401


# ===========================================================================================
# Generic ops.
def _field_sizes(size) -> tuple[int, int]:
    return (int(size[0]), int(size[1]))


@register_op("flip_lr")
def flip_lr(fields: dict) -> dict:
    """Every field mirrored left-right, each label corrected by its task (`Task.flipped`)."""
    return augment.flip_left_right(fields)


@register_op("random_flip_lr", draws=1)
def random_flip_lr(fields: dict, seeds, p: float = 0.5) -> dict:
    """`flip_lr` with probability `p`."""
    return augment.random_flip(fields, seeds[0], p)


@register_op("random_scale_crop", draws=1)
def random_scale_crop(fields: dict, seeds, scale_min: float = 1.0, scale_max: float = 1.5):
    """A zoom-in by s ~ U[scale_min, scale_max] at a random position (`augment.
    random_scale_crop`); nothing for s = 1 (scale_min = 1 >= scale_max)."""
    if not (scale_max > scale_min or scale_min != 1.0):
        return fields
    return augment.random_scale_crop(fields, seeds[0], scale_min, scale_max)


@register_op("random_centre_zoom", draws=1)
def random_centre_zoom(fields: dict, seeds, *scales: float) -> dict:
    """A zoom about the centre by one of `scales` (uniform), at constant size: ScaleNRotate
    without rotation (`augment.scale_and_rotate`)."""
    index = augment.uniform_int(seeds[0], len(scales))
    scale = tf.gather(tf.constant(scales, tf.float64), index)
    return augment.scale_and_rotate(fields, tf.constant(0.0, tf.float64), scale)


@register_op("random_rotate_scale", draws=2)
def random_rotate_scale(fields: dict, seeds, max_angle: float, scale_min: float, scale_max):
    """ScaleNRotate: a rotation by U(-max_angle, max_angle) degrees and a zoom by
    U(scale_min, scale_max) about the centre, at constant size (`augment.scale_and_rotate`)."""
    angle_seed, scale_seed = seeds
    angle = tf.random.stateless_uniform([], angle_seed, -max_angle, max_angle, tf.float64)
    scale = tf.random.stateless_uniform([], scale_seed, scale_min, scale_max, tf.float64)
    return augment.scale_and_rotate(fields, angle, scale)


@register_op("random_crop_zoom_align_corners", draws=3)
def random_crop_zoom_align_corners(fields: dict, seeds, *scales: float) -> dict:
    """lorenmt's RandomScaleCrop: s from `scales` (uniform), a window of int(H / s) x
    int(W / s) at a uniform random offset, resized back with align_corners
    (`augment.scale_crop_align_corners`)."""
    scale_seed, y_seed, x_seed = seeds
    height, width = fields["image"].shape[:2]
    scale = tf.gather(tf.constant(scales, tf.float64), augment.uniform_int(scale_seed, len(scales)))
    crop_h = tf.cast(tf.floor(height / scale), tf.int32)
    crop_w = tf.cast(tf.floor(width / scale), tf.int32)
    top = augment.uniform_int(y_seed, height - crop_h + 1)
    left = augment.uniform_int(x_seed, width - crop_w + 1)
    return augment.scale_crop_align_corners(fields, scale, top, left)


@register_op("fixed_resize")
def fixed_resize(fields: dict, height: int, width: int) -> dict:
    """FixedResize of every field to (height, width) (`augment.fixed_resize`)."""
    return augment.fixed_resize(fields, _field_sizes((height, width)))


@register_op("fixed_resize_image")
def fixed_resize_image(fields: dict, height: int, width: int) -> dict:
    """FixedResize of the image alone (the labels keep their size: evaluation canvas)."""
    image = augment.fixed_resize({"image": fields["image"]}, _field_sizes((height, width)))
    return {**fields, "image": image["image"]}


@register_op("project_labels")
def project_labels(fields: dict) -> dict:
    """Every label made valid again by its task (`Task.project`: normals re-normalised)."""
    return augment.labels_corrected(fields, lambda task, value: task.project(value))


@register_op("to_uint8_range")
def to_uint8_range(fields: dict) -> dict:
    """The image as the reference's `astype(uint8)` reads it (`augment.to_uint8_range`)."""
    return {**fields, "image": augment.to_uint8_range(fields["image"])}


register_recipe("none", Recipe(train=lambda ctx: ""))
