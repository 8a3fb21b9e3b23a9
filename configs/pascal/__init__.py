"""Experiments on PASCAL-Context MT, one file per YAML of the MTL reference."""
