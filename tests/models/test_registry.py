"""The model registry: entries read from the source agree with what the modules register, the
config layer reads them without JAX, and the import graph of mtnets/models has no cycle."""

import ast
import os
import subprocess
import sys

import pytest

from mtnets.models import registry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE_DIR = os.path.join(ROOT, "mtnets", "models")


# ---------------------------------------------------------------------------------------------
# The import graph.
# ---------------------------------------------------------------------------------------------


def module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
    return rel.removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """`{module: modules of mtnets.models it imports}`, every import statement counted (also
    those inside functions); `from package import name` counts the submodule `name` if there
    is one, else the package."""
    modules = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                modules[module_name(path)] = path
    graph = {}
    for name, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path `[a, b, ..., a]`, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_of_mtnets_models_has_no_cycle():
    graph = import_graph()
    # The graph is the real one: the models import the registry and the shared pieces.
    assert "mtnets.models.registry" in graph["mtnets.models.cross_stitch"]
    assert "mtnets.models.backbones.resnet" in graph["mtnets.models.mtan"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


# ---------------------------------------------------------------------------------------------
# Entries.
# ---------------------------------------------------------------------------------------------


def test_every_declared_model_registers_what_its_source_declares():
    """`builder` imports each module and compares its registration with the source."""
    for name in registry.names():
        assert callable(registry.builder(name))
        weights = registry.reference_weights(name)
        assert weights is None or callable(weights), name


def test_entries_carry_the_facts_of_the_former_tables():
    info = registry.declared()
    divisors = {name: i.input_divisor for name, i in info.items()}
    # MTI-Net doubles features over five halvings; SegNet unpools five 2x2 pools.
    assert divisors["mti_net"] == 32 and divisors["segnet_cross"] == 32
    assert divisors["multi_task_baseline"] == 1 and divisors["pad_net"] == 1
    assert [n for n, i in info.items() if i.single_task_init] == ["cross_stitch", "nddr_cnn"]
    assert registry.converted_by("mtnets.porting.mtl") == (
        "multi_task_baseline",
        "single_task_baseline",
        "mti_net",
        "pad_net",
    )


def test_unknown_names_are_errors_that_list_the_models():
    with pytest.raises(ValueError, match="mtan_v2.*segnet_mtan"):
        registry.model_info("mtan_v2")


def test_declarations_must_be_literals(tmp_path):
    path = tmp_path / "bad_model.py"
    path.write_text(
        "WIDTH = 2 ** 5\n"
        "@register_model('bad', input_divisor=WIDTH)\n"
        "def build(config, dtype):\n"
        "    return None\n"
    )
    with pytest.raises(ValueError, match="bad_model.py:2.*literals"):
        registry._declared_in(str(path), "bad_model")


def test_shared_fields_need_one_default():
    a = registry.ModelInfo("a", "m", defaults={"alpha": 0.9})
    b = registry.ModelInfo("b", "m", defaults={"alpha": 0.5})
    assert registry.model_defaults({"a": a}) == {"alpha": 0.9}
    with pytest.raises(ValueError, match="config.model.alpha"):
        registry.model_defaults({"a": a, "b": b})


def test_the_default_config_has_every_models_own_fields():
    from configs.default import get_config

    model = get_config().model
    for name, info in registry.declared().items():
        for field, default in info.defaults.items():
            assert field in model, (name, field)
            if isinstance(default, dict):
                assert set(model[field]) == set(default), (name, field)


def test_the_registry_and_the_package_load_no_jax():
    code = (
        "import sys\n"
        "import mtnets.models\n"
        "from mtnets.models import registry\n"
        "registry.model_defaults(); registry.model_info('nddr_cnn')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax'))\n"
        "assert not loaded, loaded[:5]\n"
        "assert 'mtnets.models.nddr_cnn' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_a_backbone_and_a_head_registered_outside_the_library_build_a_model():
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from mtnets.models import create_model
    from mtnets.models.backbones import BACKBONES
    from mtnets.models.heads import HEADS
    from tests.experiment_configs import model_config

    class TwoScales(nn.Module):
        dtype: object = jnp.float32

        @nn.compact
        def __call__(self, x, train=False):
            fine = nn.Conv(4, (3, 3), strides=2, dtype=self.dtype)(x)
            return {"scale_0": fine, "scale_1": nn.Conv(8, (3, 3), strides=2)(fine)}

    class OneByOne(nn.Module):
        outputs: int

        @nn.compact
        def __call__(self, features, train=False):
            return nn.Conv(self.outputs, (1, 1))(features["scale_0"])

    BACKBONES.register("test_two_scales", replace=True)(lambda dtype, *, dilated: TwoScales(dtype))
    HEADS.register("test_one_by_one", replace=True)(
        lambda outputs, hidden, dtype: OneByOne(outputs)
    )
    config = model_config("multi_task_baseline", ("semseg", "depth"), "synthetic_scenes")
    config.model.backbone, config.model.head = "test_two_scales", "test_one_by_one"
    model = create_model(config)
    x = jnp.zeros((1, 16, 24, 3))
    variables = model.init(jax.random.key(0), x)
    out = model.apply(variables, x)
    assert out["semseg"].shape[:3] == (1, 16, 24) and out["depth"].shape == (1, 16, 24, 1)
    conv = variables["params"]["backbone"]["Conv_0"]["kernel"]
    assert conv.shape == (3, 3, 3, 4)  # the registered backbone's own layer


def test_unknown_backbone_and_head_name_the_field_and_the_choices():
    from mtnets.models import create_backbone, create_head

    with pytest.raises(ValueError, match=r"config.model.backbone 'resnet7'.*resnet18.*hrnet_w18"):
        create_backbone("resnet7")
    with pytest.raises(ValueError, match=r"config.model.head 'fpn'.*hrnet, deeplab"):
        create_head("fpn", 3)
    from mtnets.models.heads import HEADS

    with pytest.raises(ValueError, match="registered already"):
        HEADS.register("hrnet")(lambda outputs, hidden, dtype: None)
