"""`Registry`: builders found by name, for the extensible kinds that need no entry read by the
config layer (backbones, heads). Models, tasks and weightings have registries of their own,
because configs read their entries (defaults, class counts) without importing JAX."""

from __future__ import annotations

from collections.abc import Callable, Iterator


class Registry:
    """`{name: builder}` with a decorator to add to it and lookups whose error names the
    config field and the choices.

        BACKBONES = Registry("config.model.backbone")

        @BACKBONES.register("my_backbone")
        def build(dtype, *, dilated=False): ...
    """

    def __init__(self, field: str):
        self.field = field  # the config field that names an entry, for errors
        self._builders: dict[str, Callable] = {}

    def register(self, name: str, *, replace: bool = False) -> Callable[[Callable], Callable]:
        """Decorator: the builder is `name`; a taken name is an error unless `replace`."""

        def add(builder: Callable) -> Callable:
            if name in self._builders and not replace:
                raise ValueError(f"{self.field} {name!r} is registered already.")
            self._builders[name] = builder
            return builder

        return add

    def get(self, name: str) -> Callable:
        if name not in self._builders:
            raise ValueError(
                f"Unknown {self.field} {name!r}; choose one of {', '.join(self._builders)}."
            )
        return self._builders[name]

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)
