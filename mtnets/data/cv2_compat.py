"""OpenCV's resampling, reproduced with TensorFlow ops for the reference augmentations.

The MTL reference warps and resizes float32 arrays with OpenCV; these functions give the same
numbers inside tf.data (read from `opencv:modules/imgproc/src/imgwarp.cpp` and `resize.cpp`):

* kernel: Keys' cubic convolution with a = -0.75 (`interpolateCubic`), float32 weights;
* `cv2.getRotationMatrix2D` (`rotation_matrix`);
* `cv2.warpAffine` with INTER_CUBIC (`warp_affine_cubic`): M inverted as cv2 does, the source
  position of every output pixel in 1/1024 px fixed point, rounded to 1/32 px
  (INTER_TAB_SIZE), 4x4 taps from floor - 1, taps outside the image count as the border value
  0 (BORDER_CONSTANT), no rounding;
* `cv2.resize` with INTER_CUBIC (`resize_cubic`): half-pixel centres, src =
  float32((dst + 0.5) * in / out - 0.5), taps clamped to the image (replicated border), a
  horizontal then a vertical pass; with INTER_NEAREST (`resize_nearest_floor`, which also
  gives PyTorch's legacy 'nearest').

They agree with a NumPy transcription and with opencv-python 4.10 to float32 rounding (about
1e-7 relative; `tests/data/test_augment.py`). `mtnets.data.augment` composes them into the
reference recipes.
"""

from __future__ import annotations

import math

import tensorflow as tf


def rotation_matrix(height, width, angle_deg, scale) -> tf.Tensor:
    """cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale): the `[2, 3]` map source ->
    destination pixel coordinates (x right, y down; a positive angle turns the picture
    counter-clockwise on screen)."""
    theta = float64(angle_deg) * (math.pi / 180.0)
    scale = float64(scale)
    alpha, beta = scale * tf.cos(theta), scale * tf.sin(theta)
    cx, cy = tf.cast(width, tf.float64) / 2.0, tf.cast(height, tf.float64) / 2.0
    return tf.stack(
        [
            tf.stack([alpha, beta, (1 - alpha) * cx - beta * cy]),
            tf.stack([-beta, alpha, beta * cx + (1 - alpha) * cy]),
        ]
    )


# OpenCV's fixed-point constants (`opencv:modules/imgproc/src/imgwarp.cpp`, WarpAffineInvoker):
# the affine map is evaluated in 1/AB_SCALE px and rounded to 1/INTER_TAB_SIZE px.
CUBIC_A = -0.75
INTER_BITS = 5
INTER_TAB_SIZE = 1 << INTER_BITS
AB_BITS = 10
AB_SCALE = 1 << AB_BITS


def cubic_coefficients(t) -> tf.Tensor:
    """OpenCV's `interpolateCubic`: the float32 weights of the taps at floor(x) - 1 .. floor(x) + 2
    for the fraction t = x - floor(x) (Keys' kernel, a = -0.75; the last weight is 1 minus the
    others). `[...]` -> `[..., 4]`."""
    a = CUBIC_A
    t = tf.cast(t, tf.float32)
    u = t + 1.0
    c0 = ((a * u - 5 * a) * u + 8 * a) * u - 4 * a
    c1 = ((a + 2) * t - (a + 3)) * t * t + 1.0
    s = 1.0 - t
    c2 = ((a + 2) * s - (a + 3)) * s * s + 1.0
    c3 = 1.0 - c0 - c1 - c2
    return tf.stack([c0, c1, c2, c3], axis=-1)


def cv2_invert_affine(matrix) -> tf.Tensor:
    """The `[2, 3]` float64 destination -> source map that cv2.warpAffine samples with: M
    inverted by its own formula (1 / det, then the translation), so the rounding matches."""
    m = tf.reshape(tf.cast(matrix, tf.float64), [6])
    det = m[0] * m[4] - m[1] * m[3]
    d = tf.where(tf.equal(det, 0.0), tf.zeros_like(det), 1.0 / det)
    a00, a01, a10, a11 = m[4] * d, m[1] * -d, m[3] * -d, m[0] * d
    b0 = -a00 * m[2] - a01 * m[5]
    b1 = -a10 * m[2] - a11 * m[5]
    return tf.reshape(tf.stack([a00, a01, b0, a10, a11, b1]), [2, 3])


def warp_affine_cubic(value, matrix) -> tf.Tensor:
    """cv2.warpAffine(value, matrix, (w, h), flags=INTER_CUBIC) with BORDER_CONSTANT 0 for a
    float32 `[H, W, C]` array (any dtype in, float32 out, no rounding): every output pixel reads
    the 4x4 taps around matrix^-1 (x, y), its position rounded to 1/32 px as cv2 does; taps
    outside the image contribute 0. `matrix`: the `[2, 3]` source -> destination map.

    An axis-aligned map (no rotation, e.g. the NYUD zooms) is resampled separably: a gather of
    4 columns, then of 4 rows. A rotated map gathers the 4x4 taps of every pixel."""
    value = tf.cast(value, tf.float32)
    inv = cv2_invert_affine(matrix)
    aligned = tf.logical_and(tf.equal(inv[0, 1], 0.0), tf.equal(inv[1, 0], 0.0))
    out = tf.cond(
        aligned,
        lambda: _warp_cubic_separable(value, inv),
        lambda: _warp_cubic_general(value, inv),
    )
    return tf.ensure_shape(out, value.shape)


def _fixed_point_position(inv, coordinate: int, height, width):
    """cv2's source x (`coordinate` c = 0) or y (c = 1) in 1/32 px, int32 `[height, width]`
    for the output pixels (x, y) in [0, width) x [0, height): with a = `inv[c]`, per row
    round((a1 y + a2) 1024) + 16, per column round(a0 x 1024), summed, >> 5
    (`WarpAffineInvoker`; saturate_cast<int> rounds half to even, as tf.round does)."""
    ys = tf.range(height, dtype=tf.float64)
    xs = tf.range(width, dtype=tf.float64)
    a = inv[coordinate]
    per_row = tf.round((a[1] * ys + a[2]) * AB_SCALE) + AB_SCALE // INTER_TAB_SIZE // 2
    per_col = tf.round(a[0] * xs * AB_SCALE)
    total = tf.cast(per_row[:, None] + per_col[None, :], tf.int32)
    return tf.bitwise.right_shift(total, AB_BITS - INTER_BITS)


def _split_position(position):
    """A position in 1/32 px -> (its integer part, the weights `[..., 4]` of its fraction, looked
    up in the table of the 32 fractions as cv2 does: `initInterTab1D`)."""
    whole = tf.bitwise.right_shift(position, INTER_BITS)
    fraction = tf.bitwise.bitwise_and(position, INTER_TAB_SIZE - 1)
    table = cubic_coefficients(tf.range(INTER_TAB_SIZE, dtype=tf.float32) / INTER_TAB_SIZE)
    return whole, tf.gather(table, fraction)


def _warp_cubic_separable(value, inv):
    height, width = tf.shape(value)[0], tf.shape(value)[1]
    # An axis-aligned map: x depends on the column only, y on the row only.
    x0, wx = _split_position(_fixed_point_position(inv, 0, 1, width)[0])
    y0, wy = _split_position(_fixed_point_position(inv, 1, height, 1)[:, 0])
    columns = _resample_rows(tf.transpose(value, [1, 0, 2]), x0 - 1, wx, clamp=False)
    return _resample_rows(tf.transpose(columns, [1, 0, 2]), y0 - 1, wy, clamp=False)


def _resample_rows(value, first, weights, clamp: bool):
    """out[i] = sum_k weights[i, k] value[first[i] + k], k = 0..3, along axis 0 of `value`
    `[N, ...]`, summed left to right as cv2 does. Taps outside [0, N) are clamped to the edge
    (`clamp`, cv2.resize) or count as 0 (cv2.warpAffine, BORDER_CONSTANT 0)."""
    size = tf.shape(value)[0]
    out = None
    for k in range(4):
        index = first + k
        weight = weights[:, k]
        if not clamp:
            inside = tf.logical_and(index >= 0, index < size)
            weight = tf.where(inside, weight, tf.zeros_like(weight))
        rows = tf.gather(value, tf.clip_by_value(index, 0, size - 1))
        term = rows * tf.reshape(weight, [-1] + [1] * (len(value.shape) - 1))
        out = term if out is None else out + term
    return out


def _warp_cubic_general(value, inv):
    """The 4x4 taps of every output pixel, weighted by float32(wy wx) as cv2's 2-D table. The
    image is padded with 4 zero pixels on each side and laid out as rows of 4 neighbouring
    pixels, so the taps of a pixel are 4 rows of that layout; a tap window entirely outside the
    image is clamped into the zero padding."""
    height, width, channels = tf.shape(value)[0], tf.shape(value)[1], value.shape[-1]
    x0, wx = _split_position(_fixed_point_position(inv, 0, height, width))
    y0, wy = _split_position(_fixed_point_position(inv, 1, height, width))
    padded = tf.pad(value, [[4, 4], [4, 4], [0, 0]])
    quads = tf.concat([padded[:, k : k + width + 5] for k in range(4)], axis=-1)
    quads = tf.reshape(quads, [-1, 4 * channels])  # [(H + 8) * (W + 5), 4 C]
    left = tf.clip_by_value(x0 + 3, 0, width + 4)  # padded column of the tap at x0 - 1
    top = tf.clip_by_value(y0 + 3, 0, height + 4)
    rows = (top * (width + 5) + left)[..., None] + tf.range(4) * (width + 5)
    taps = tf.reshape(tf.gather(quads, rows), [height, width, 16, channels])
    weights = tf.reshape(wy[..., :, None] * wx[..., None, :], [height, width, 16, 1])
    return tf.reduce_sum(taps * weights, axis=2)


def resize_cubic(value, size) -> tf.Tensor:
    """cv2.resize(value, (w, h), interpolation=INTER_CUBIC) for a float32 `[H, W, C]` array (any
    dtype in, float32 out): half-pixel centres, source x = float32((x + 0.5) in / out - 0.5),
    taps clamped to the image, a horizontal then a vertical pass (`opencv:resize.cpp`,
    resizeGeneric_ with HResizeCubic/VResizeCubic). `size`: (h, w)."""
    value = tf.cast(value, tf.float32)
    out_h, out_w = size
    first_x, wx = _resize_taps(tf.shape(value)[1], out_w)
    first_y, wy = _resize_taps(tf.shape(value)[0], out_h)
    columns = _resample_rows(tf.transpose(value, [1, 0, 2]), first_x, wx, clamp=True)
    out = _resample_rows(tf.transpose(columns, [1, 0, 2]), first_y, wy, clamp=True)
    return tf.ensure_shape(out, (out_h, out_w, value.shape[-1]))


def _resize_taps(in_size, out_size):
    """cv2.resize's first tap (floor(x) - 1) and cubic weights along one axis: scale =
    1 / (out / in) in double, x = float32((dst + 0.5) scale - 0.5)."""
    scale = 1.0 / (tf.cast(out_size, tf.float64) / tf.cast(in_size, tf.float64))
    x = tf.cast((tf.range(out_size, dtype=tf.float64) + 0.5) * scale - 0.5, tf.float32)
    whole = tf.floor(x)
    return tf.cast(whole, tf.int32) - 1, cubic_coefficients(x - whole)


def resize_nearest_floor(value, size, float32_scale: bool = False) -> tf.Tensor:
    """Nearest resize with source index min(floor(dst * in / out), in - 1): cv2.INTER_NEAREST
    (double arithmetic) or, with `float32_scale`, PyTorch's legacy 'nearest' (float32)."""
    dtype = tf.float32 if float32_scale else tf.float64
    for axis, out_size in ((0, size[0]), (1, size[1])):
        in_size = tf.shape(value)[axis]
        ratio = tf.cast(in_size, dtype) / tf.cast(out_size, dtype)
        src = tf.cast(tf.floor(tf.cast(tf.range(out_size), dtype) * ratio), tf.int32)
        value = tf.gather(value, tf.minimum(src, in_size - 1), axis=axis)
    return value


def float64(x) -> tf.Tensor:
    """A float64 scalar; Python numbers are converted exactly (not through float32)."""
    return tf.cast(x, tf.float64) if isinstance(x, tf.Tensor) else tf.constant(x, tf.float64)
