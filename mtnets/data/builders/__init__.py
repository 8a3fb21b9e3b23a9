"""TFDS builders of the library's datasets; importing this package registers them with TFDS."""

from mtnets.data.builders import synthetic_scenes  # noqa: F401
