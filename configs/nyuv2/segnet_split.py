"""SegNet split, hard parameter sharing (`--type standard|wide|deep`: `type=...`), NYUv2 13 classes.

Reference: `MTAN:im2im_pred/model_segnet_split.py`. Launch string: `type=standard` (the
default), `wide` (the last stage 1024 channels) or `deep` (every conv layer doubled), plus
those of `configs/nyuv2/common.py` (`weighting=equal|dwa|uncertainty`, `aug=True`).
"""

from configs.nyud.common import split_arg
from configs.nyuv2.common import lorenmt_config

MODELS = {"standard": "segnet_split", "wide": "segnet_split_wide", "deep": "segnet_split_deep"}


def get_config(arg=None):
    chosen, rest = split_arg(arg, ("type",))
    kind = chosen.get("type", "standard")
    if kind not in MODELS:
        raise ValueError(f"type must be one of {', '.join(MODELS)}, got {kind!r}.")
    return lorenmt_config(MODELS[kind], rest)
