"""Experiments on NYUD-MT, one file per YAML of the MTL reference (`configs/nyud/*/`)."""
