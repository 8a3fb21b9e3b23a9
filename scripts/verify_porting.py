"""Checks `mtnets.porting` against the reference PyTorch code: same weights, same outputs.

For each model, the reference network is built from its own source (a checkout outside this
repository: nothing of it is copied here), every parameter and BatchNorm statistic is drawn at
random, its `state_dict()` is converted with `mtnets.porting.variables_from_reference`, and both
models run in eval mode on the same random image. The script prints, per output (deep-supervision
/ initial predictions included), the maximum absolute difference and that maximum relative to
the largest reference value, and fails when a relative error exceeds `--tolerance`.

Needs torch next to mtnets (`pip install -e .[torch]`) and the reference checkouts:

    python scripts/verify_porting.py --mtl /path/to/Multi-Task-Learning-PyTorch \
        --mtan /path/to/mtan [--models mti_net,segnet_mtan] [--size 64x96]

`--mtl` is SimonVandenhende/Multi-Task-Learning-PyTorch (MTI-Net, PAD-Net, the baselines);
`--mtan` is lorenmt/mtan (the SegNet family of `im2im_pred/`). Models whose checkout is not given
are skipped. docs/porting.md lists the figures this printed.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# ---------------------------------------------------------------------------------------------
# Random weights.


def randomise(module, seed: int = 0) -> None:
    """Draws every parameter and BatchNorm statistic of a torch module at random, so that a
    mapping error anywhere changes the outputs. BN scales stay in [0.5, 1.5] and variances in
    [0.5, 1.5]: scales near 0 make later layers compare near-ties that float32 rounding decides
    (docs/porting.md), which would hide real errors behind spurious ones."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = module.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            if not tensor.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var" or _is_batch_norm_weight(module, name):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif leaf in ("running_mean", "bias"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
            else:
                # Variance 1/fan-in, so activations neither vanish nor explode with depth.
                fan_in = max(1, tensor[0].numel()) if tensor.dim() > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)


def _is_batch_norm_weight(module, name: str) -> bool:
    import torch

    owner, _, leaf = name.rpartition(".")
    return leaf == "weight" and isinstance(
        module.get_submodule(owner), torch.nn.modules.batchnorm._BatchNorm
    )


# ---------------------------------------------------------------------------------------------
# Loading the references' classes without running their scripts.


def _mtl_modules(checkout: str):
    """The MTL checkout's model package, importable with today's numpy and torchvision (two
    stand-ins; the checkout is not modified): `np.int`, removed in NumPy 1.24, and
    `torchvision.models.utils`, gone from newer torchvision and used only for ImageNet URLs."""
    if "int" not in np.__dict__:
        np.int = int
    try:
        from torchvision.models.utils import load_state_dict_from_url  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torchvision.models.utils")
        stub.load_state_dict_from_url = _refuse_download
        for name in ("torchvision", "torchvision.models"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["torchvision.models.utils"] = stub
    if checkout not in sys.path:
        sys.path.insert(0, checkout)
    import yaml
    from models import models, mti_net, padnet, seg_hrnet

    return types.SimpleNamespace(
        yaml=yaml, mti_net=mti_net, models=models, padnet=padnet, seg_hrnet=seg_hrnet
    )


def _refuse_download(*args, **kwargs):
    raise RuntimeError("verify_porting uses random weights; nothing is downloaded")


def lorenmt_classes(path: str, **opt) -> dict:
    """The classes of one lorenmt `im2im_pred/model_*.py` script. The scripts train at import
    time, so only their imports of torch and their class definitions are executed; `opt` stands
    in for the script's parsed command line (`opt.task` of the single-task models)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    keep = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        or (isinstance(node, ast.Import | ast.ImportFrom) and _imports_torch(node))
    ]
    namespace = {"opt": types.SimpleNamespace(**opt), **_star_imports()}
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), namespace)
    return {k: v for k, v in namespace.items() if isinstance(v, type)}


def _star_imports() -> dict:
    """What the scripts get from `from utils import *` (lorenmt's utils.py imports these)."""
    try:
        import torch
    except ImportError:  # the class definitions alone need none of it
        return {"np": np}
    return {"torch": torch, "F": torch.nn.functional, "np": np}


def _imports_torch(node) -> bool:
    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
    names += [a.name for a in node.names]
    return any(n.split(".")[0] == "torch" for n in names)


# ---------------------------------------------------------------------------------------------
# The models compared.


class _Namespace(dict):
    """The attribute-and-key access of the MTL config object (an EasyDict)."""

    __getattr__ = dict.__getitem__


NYUD_OUTPUTS = {"semseg": 40, "depth": 1, "normals": 3, "edge": 1}
HRNET_CHANNELS = [18, 36, 72, 144]


def _mtl_p(tasks, aux):
    return _Namespace(
        TASKS=_Namespace(NAMES=list(tasks), NUM_OUTPUT=dict(NYUD_OUTPUTS)),
        AUXILARY_TASKS=_Namespace(NAMES=list(aux), NUM_OUTPUT=dict(NYUD_OUTPUTS)),
    )


def _hrnet(ref, checkout):
    with open(os.path.join(checkout, "models", "model_info", "hrnet_w18.yml")) as f:
        return ref.seg_hrnet.HighResolutionNet(ref.yaml.safe_load(f))


def _hrnet_heads(ref, tasks):
    import torch

    return torch.nn.ModuleDict(
        {t: ref.seg_hrnet.HighResolutionHead(HRNET_CHANNELS, NYUD_OUTPUTS[t]) for t in tasks}
    )


def mtl_mti_net(checkout: str, aux: tuple[str, ...]):
    """MTL `get_model` for `configs/nyud/hrnet18/mti_net[+edges_normals].yml`."""
    ref = _mtl_modules(checkout)
    tasks = ("semseg", "depth")
    heads = _hrnet_heads(ref, tasks)
    return ref.mti_net.MTINet(_mtl_p(tasks, aux), _hrnet(ref, checkout), HRNET_CHANNELS, heads)


def mtl_pad_net(checkout: str, aux: tuple[str, ...]):
    """MTL `get_model` for `configs/nyud/hrnet18/pad_net.yml` (HRNet fused to one map)."""
    import torch

    ref = _mtl_modules(checkout)
    fuse = ref.seg_hrnet.HighResolutionFuse(HRNET_CHANNELS, 256)
    backbone = torch.nn.Sequential(_hrnet(ref, checkout), fuse)
    return ref.padnet.PADNet(_mtl_p(("semseg", "depth"), aux), backbone, sum(HRNET_CHANNELS))


def mtl_baseline(checkout: str):
    """MTL `get_model` for `configs/nyud/hrnet18/multi_task_baseline.yml`."""
    ref = _mtl_modules(checkout)
    tasks = ("semseg", "depth")
    return ref.models.MultiTaskModel(_hrnet(ref, checkout), _hrnet_heads(ref, tasks), list(tasks))


def mtl_outputs(ref_out: dict) -> dict:
    """Flat `{name: NHWC array}` of an MTL model's output dict: the main tasks, MTI-Net's
    `deep_supervision/scale_s/<t>` (not the `features_<t>` it also returns) and PAD-Net's
    `initial_<t>`."""
    flat = {}
    for key, value in ref_out.items():
        if key == "deep_supervision":
            for scale, preds in value.items():
                flat.update(
                    {f"{scale}/{t}": v for t, v in preds.items() if not t.startswith("features_")}
                )
        elif key.startswith("initial_"):
            flat[f"initial/{key[len('initial_') :]}"] = value
        else:
            flat[key] = value
    return {k: v.detach().numpy().transpose(0, 2, 3, 1) for k, v in flat.items()}


def our_mtl_outputs(out: dict) -> dict:
    """Our output dict flattened with the names of `mtl_outputs`."""
    flat = {}
    for key, value in out.items():
        if key == "intermediate":
            for scale, preds in value.items():
                flat.update({f"{scale}/{t}": v for t, v in preds.items()})
        else:
            flat[key] = value
    return {k: np.asarray(v) for k, v in flat.items()}


LORENMT_TASKS = ("semseg", "depth", "normals")


def lorenmt_segnet(checkout: str, script: str, **opt):
    path = os.path.join(checkout, "im2im_pred", script)
    return lorenmt_classes(path, **opt)["SegNet"]()


def lorenmt_reference_outputs(ref_out) -> dict:
    """lorenmt's `([semantic, depth, normal], logsigma)` as `{task: NHWC}`."""
    predictions, _ = ref_out
    return {
        t: p.detach().numpy().transpose(0, 2, 3, 1)
        for t, p in zip(LORENMT_TASKS, predictions, strict=True)
    }


def our_lorenmt_outputs(out: dict) -> dict:
    from mtnets.porting.mtan import lorenmt_outputs

    return {k: np.asarray(v) for k, v in lorenmt_outputs(out).items()}


@dataclass(frozen=True)
class Case:
    """One comparison: our config (file and argument), the reference model's builder (given the
    checkout) and the two sides' output flatteners."""

    checkout: str  # "mtl" or "mtan": which --flag gives the source
    config: tuple[str, str | None]
    build: Callable
    reference_outputs: Callable
    our_outputs: Callable
    # Reference parameters that are not the model's (lorenmt's `logsigma` belongs to the loss
    # weighting; `mtnets.porting.mtan.reference_logsigma` reads it).
    not_model: tuple[str, ...] = ()


AUX_EN = ("semseg", "normals", "edge", "depth")  # the reference's order for +edges_normals
CASES = {
    "mti_net": Case(
        "mtl",
        ("configs/nyud/mti_net.py", None),
        lambda c: mtl_mti_net(c, ("semseg", "depth")),
        mtl_outputs,
        our_mtl_outputs,
    ),
    "mti_net+edge+normals": Case(
        "mtl",
        ("configs/nyud/mti_net.py", "aux=edge+normals"),
        lambda c: mtl_mti_net(c, AUX_EN),
        mtl_outputs,
        our_mtl_outputs,
    ),
    "pad_net": Case(
        "mtl",
        ("configs/nyud/pad_net.py", None),
        lambda c: mtl_pad_net(c, ("semseg", "depth")),
        mtl_outputs,
        our_mtl_outputs,
    ),
    "multi_task_baseline": Case(
        "mtl",
        ("configs/nyud/multi_task_baseline.py", None),
        mtl_baseline,
        mtl_outputs,
        our_mtl_outputs,
    ),
    "segnet_mtan": Case(
        "mtan",
        ("configs/nyuv2/segnet_mtan.py", None),
        lambda c: lorenmt_segnet(c, "model_segnet_mtan.py"),
        lorenmt_reference_outputs,
        our_lorenmt_outputs,
        ("logsigma",),
    ),
    "segnet_split": Case(
        "mtan",
        ("configs/nyuv2/segnet_split.py", None),
        lambda c: lorenmt_segnet(c, "model_segnet_split.py", type="standard"),
        lorenmt_reference_outputs,
        our_lorenmt_outputs,
        ("logsigma",),
    ),
}


# ---------------------------------------------------------------------------------------------
# The comparison.


def errors(ours: dict, reference: dict) -> dict[str, tuple[float, float]]:
    """`{output: (max |ours - ref|, that / max |ref|)}`; the two sides must name the same
    outputs with the same shapes."""
    if set(ours) != set(reference):
        raise ValueError(
            f"outputs differ: only ours {sorted(set(ours) - set(reference))}, "
            f"only the reference's {sorted(set(reference) - set(ours))}"
        )
    out = {}
    for name in sorted(reference):
        a, b = np.asarray(ours[name], np.float64), np.asarray(reference[name], np.float64)
        if a.shape != b.shape:
            raise ValueError(f"output {name}: ours {a.shape}, the reference's {b.shape}")
        diff = float(np.max(np.abs(a - b)))
        out[name] = (diff, diff / max(float(np.max(np.abs(b))), 1e-30))
    return out


def verify(name: str, case: Case, checkout: str, size: tuple[int, int], seed: int) -> dict:
    import jax
    import torch

    from mtnets.config_utils import load_config
    from mtnets.models import create_model
    from mtnets.porting import variables_from_reference

    reference = case.build(checkout)
    randomise(reference, seed)
    reference.eval()
    image = np.random.default_rng(seed).normal(size=(2, 3, *size)).astype(np.float32)
    with torch.no_grad():
        ref_out = case.reference_outputs(reference(torch.from_numpy(image)))
    state = {k: v.numpy() for k, v in reference.state_dict().items()}

    path, arg = case.config
    config = load_config(os.path.join(ROOT, path), arg)
    variables = variables_from_reference(config, state)
    model = create_model(config)
    # Compiled with XLA's optimisations off: the same float32 arithmetic, minutes less compile.
    fast = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False), compiler_options=fast)
    out = apply(variables, image.transpose(0, 2, 3, 1))
    count = sum(p.numel() for n, p in reference.named_parameters() if n not in case.not_model)
    ours = sum(np.size(x) for x in jax.tree.leaves(variables["params"]))
    if count != ours:
        raise ValueError(f"{name}: {count} reference parameters, {ours} of ours")
    return {"parameters": count, "errors": errors(case.our_outputs(out), ref_out)}


def parse_size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mtl", help="checkout of SimonVandenhende/Multi-Task-Learning-PyTorch")
    parser.add_argument("--mtan", help="checkout of lorenmt/mtan")
    parser.add_argument("--models", default=",".join(CASES), help="comma-separated")
    parser.add_argument("--size", type=parse_size, default=(64, 96), help="HxW of the input")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max relative error")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit("verify_porting needs torch: pip install -e '.[torch]'") from None
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {', '.join(CASES)}")
    results, failed = {}, []
    for name in names:
        checkout = getattr(args, CASES[name].checkout)
        if not checkout:
            print(f"{name}: skipped (no --{CASES[name].checkout} checkout)")
            continue
        try:
            result = verify(name, CASES[name], os.path.abspath(checkout), args.size, args.seed)
        except Exception as e:  # report it and go on with the other models
            print(f"{name}: FAILED: {type(e).__name__}: {e}", flush=True)
            failed.append(name)
            continue
        results[name] = result
        print(f"{name}: {result['parameters']:,} parameters")
        for output, (diff, rel) in result["errors"].items():
            flag = "" if rel <= args.tolerance else "  <-- above tolerance"
            print(f"  {output:24s} max abs diff {diff:.3g}  relative {rel:.3g}{flag}", flush=True)
            if rel > args.tolerance:
                failed.append(f"{name}/{output}")
    if failed:
        raise SystemExit(f"failed or above --tolerance {args.tolerance}: {', '.join(failed)}")
    return results


if __name__ == "__main__":
    main()
