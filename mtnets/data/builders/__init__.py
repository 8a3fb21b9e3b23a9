"""TFDS builders of the library's datasets; importing this package registers them with TFDS."""

from mtnets.data.builders import (  # noqa: F401
    nyud_mt,
    nyuv2_mtan,
    pascal_context_mt,
    synthetic_scenes,
)
