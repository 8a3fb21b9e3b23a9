"""mtnets: multi-task dense prediction networks in JAX/Flax."""

__version__ = "0.1.0"
