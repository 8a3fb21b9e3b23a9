"""Equal weights, `L = sum_t L_t` (a sum, as lorenmt's `--weight equal`, not a mean)."""

from __future__ import annotations

from mtnets.weighting.base import Weighting
from mtnets.weighting.fixed import fixed
from mtnets.weighting.registry import Context, register


@register("equal")
def build(cfg, ctx: Context) -> Weighting:
    del cfg
    return fixed([1.0] * len(ctx.tasks))
