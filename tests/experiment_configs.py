"""Configs for tests that build a model or read a section: configs/default.py with some fields
changed, so that every field the library reads has its one default (a test that built a
partial ConfigDict by hand would hide a missing default)."""

from collections.abc import Mapping
from typing import Any

import ml_collections

from configs.default import get_config
from mtnets.config_utils import set_fields


def experiment_config(fields: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
    """configs/default.py's config with `{"dotted.key": value}` set (unknown keys: KeyError)."""
    return set_fields(get_config(), fields or {})


def model_config(name: str, tasks, dataset: str, aux=(), **model) -> ml_collections.ConfigDict:
    """The default config with the model `name` (and `config.model` fields `model`) for
    `tasks` on `dataset`."""
    fields = {"model.name": name, "tasks": tuple(tasks), "aux_tasks": tuple(aux)}
    fields["dataset.name"] = dataset
    fields.update({f"model.{key}": value for key, value in model.items()})
    return experiment_config(fields)
