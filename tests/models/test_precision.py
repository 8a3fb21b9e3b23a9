"""config.dtype = "bfloat16": bf16 activations, float32 parameters, outputs close to float32."""

import jax
import jax.numpy as jnp
import numpy as np

from configs.synthetic.tiny import get_config
from mtnets.models import create_model


def test_bfloat16_compute_keeps_float32_parameters_and_is_close_to_float32():
    images = jax.random.normal(jax.random.key(1), (2, 32, 64, 3))
    model_32 = create_model(get_config())
    model_16 = create_model(get_config("dtype=bfloat16"))
    variables = model_32.init(jax.random.key(0), images)
    shapes_16 = jax.eval_shape(model_16.init, jax.random.key(0), images)
    # Same variables, all float32, whatever the compute dtype.
    assert jax.tree.map(lambda x: (x.shape, x.dtype), shapes_16) == jax.tree.map(
        lambda x: (x.shape, x.dtype), variables
    )
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))

    out_32 = model_32.apply(variables, images)
    out_16 = model_16.apply(variables, images)
    for task, reference in out_32.items():
        got = np.asarray(out_16[task], np.float32)
        assert out_16[task].dtype == jnp.bfloat16
        # bf16 keeps 8 bits of mantissa: errors of a few 1e-2 of the output's scale.
        scale = np.abs(np.asarray(reference)).max()
        assert np.abs(got - np.asarray(reference)).max() <= 5e-2 * scale, task
