"""A toy multi-task model for train-step tests: two shared convolutions under `backbone` (the
layout a weighting's `shared_path` points into) and a 1x1 head per task. It compiles in about a
second, unlike the tiny ResNet."""

import flax.linen as nn


class _Trunk(nn.Module):
    channels: dict
    width: int

    @nn.compact
    def __call__(self, images, train=False):
        x = nn.relu(nn.Conv(self.width, (3, 3), name="conv1")(images))
        x = nn.relu(nn.Conv(self.width, (3, 3), name="conv2")(x))
        return {t: nn.Conv(c, (1, 1), name=f"head_{t}")(x) for t, c in self.channels.items()}


class ToyNet(nn.Module):
    """`{task: channels}` -> `{task: [B, H, W, channels]}`; `width` channels in the trunk."""

    channels: dict
    width: int = 8

    @nn.compact
    def __call__(self, images, train=False):
        return _Trunk(self.channels, self.width, name="backbone")(images, train)
