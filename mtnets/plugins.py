"""`--import`: the user's modules, imported by the entry points before the experiment is built.

A task, a backbone, a head, a model or a weighting defined outside the library is found by
name once the module that registers it has run (docs/extending.md). `train.py`, `eval.py` and
`predict.py` take `--import=my_project.tasks` (repeatable) so that such a module needs no
script of its own.
"""

from __future__ import annotations

import importlib

from absl import flags

_IMPORTS = flags.DEFINE_multi_string(
    "import",
    [],
    "A Python module to import before the experiment is built (it may register tasks, "
    "backbones, heads, models or weightings); repeatable.",
)


def import_modules(names) -> None:
    """Imports each module of `names`; a clear error names the one that fails."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ImportError(
                f"--import={name}: cannot import it ({error}); the module must be importable "
                "from the current directory or the Python path."
            ) from error


def import_from_flags() -> None:
    import_modules(_IMPORTS.value)
