"""The parts of scripts/verify_porting.py that need no torch: reading classes out of a lorenmt
training script without running it, the error measure and the case table."""

import importlib.util
import os
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def verify():
    path = os.path.join(ROOT, "scripts", "verify_porting.py")
    spec = importlib.util.spec_from_file_location("verify_porting", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_lorenmt_classes_runs_only_the_class_definitions(verify, tmp_path):
    """lorenmt's scripts parse arguments, load NYUv2 and train at import time; only the classes
    may run, with `opt` standing in for the parsed arguments."""
    script = tmp_path / "model_toy.py"
    script.write_text(
        textwrap.dedent("""
        import argparse
        from create_dataset import *
        parser = argparse.ArgumentParser()
        opt = parser.parse_args()

        class SegNet:
            def __init__(self):
                self.width = 128 if opt.type == 'wide' else 64

        raise SystemExit('the training part ran')
    """)
    )
    classes = verify.lorenmt_classes(str(script), type="wide")
    assert set(classes) == {"SegNet"}
    assert classes["SegNet"]().width == 128
    assert verify.lorenmt_classes(str(script), type="standard")["SegNet"]().width == 64


def test_errors_are_max_abs_and_relative_to_the_reference_peak(verify):
    ref = {"a": np.array([[1.0, -4.0]]), "b": np.zeros((1, 2))}
    ours = {"a": np.array([[1.5, -4.0]]), "b": np.array([[0.0, 2e-7]])}
    out = verify.errors(ours, ref)
    assert out["a"] == pytest.approx((0.5, 0.5 / 4.0))
    assert out["b"][0] == pytest.approx(2e-7)
    with pytest.raises(ValueError, match="only ours \\['c'\\]"):
        verify.errors({**ours, "c": ref["a"]}, ref)
    with pytest.raises(ValueError, match="output a: ours \\(2,\\)"):
        verify.errors({**ours, "a": np.zeros(2)}, ref)


def test_every_case_names_an_existing_config(verify):
    from mtnets.config_utils import load_config

    for name, case in verify.CASES.items():
        path, arg = case.config
        config = load_config(os.path.join(ROOT, path), arg)
        assert config.model.name == name.split("+")[0], name
        assert case.checkout in ("mtl", "mtan")
