"""The paper's ResNeXt-101 32xCd family and small CPU members of the same family.

Built on torchvision's `ResNet` and `Bottleneck`, so the paper's members are torchvision's
networks exactly (same modules, same parameter names: `resnext101_32x8d` loads torchvision's
weights). Two knobs extend it down to CPU sizes without changing the block:
`base_width` (planes of the first stage; torchvision fixes 64) and a `small` stem
(3x3 stride-1 conv, no max-pool) for 24-64 px images; `stages=3` drops the last stage.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models.resnet import Bottleneck, ResNet

from contract.errors import ConfigError
from models.registry import register_model

# Blocks per stage of the 4-stage bottleneck networks, by depth (3 convs per block + 2).
_DEPTHS_4 = {14: [1, 1, 1, 1], 26: [2, 2, 2, 2], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
             152: [3, 8, 36, 3]}


def stage_layers(depth: int, stages: int) -> list[int]:
    """Blocks per stage for a bottleneck depth: the ResNet table for 4 stages, 9k+2 for 3."""
    if stages == 4:
        if depth not in _DEPTHS_4:
            raise ConfigError(f"model.depth={depth!r} is invalid: with 4 stages use one of "
                              f"{sorted(_DEPTHS_4)}")
        return list(_DEPTHS_4[depth])
    if stages == 3:
        if depth < 11 or (depth - 2) % 9:
            raise ConfigError(f"model.depth={depth!r} is invalid: with 3 stages use 9k+2 "
                              "(11, 20, 29, ...)")
        return [(depth - 2) // 9] * 3
    raise ConfigError(f"model.stages={stages!r} is invalid: use 3 or 4")


class ResNeXt(ResNet):
    """torchvision's ResNet with a base-width knob, a small-image stem and 3 or 4 stages."""

    def __init__(self, layers: list[int], num_classes: int = 1000, cardinality: int = 32,
                 width_per_group: int = 4, base_width: int = 64, stem: str = "imagenet",
                 zero_init_residual: bool = True) -> None:
        nn.Module.__init__(self)
        self._trunk_frozen = False  # freeze_trunk() sets it; train() then keeps BN in eval
        if stem not in ("imagenet", "small"):
            raise ConfigError(f"model.stem={stem!r} is invalid: use 'imagenet' or 'small'")
        if len(layers) not in (3, 4):
            raise ConfigError(f"layers={layers!r} is invalid: use 3 or 4 stages")
        self._norm_layer = nn.BatchNorm2d
        self.dilation = 1
        self.groups = cardinality
        self.base_width = width_per_group  # torchvision's name for the per-group width
        self.inplanes = base_width
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, base_width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(3, base_width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        for i, blocks in enumerate(layers):
            planes = base_width * 2 ** i
            setattr(self, f"layer{i + 1}",
                    self._make_layer(Bottleneck, planes, blocks, stride=1 if i == 0 else 2))
        if len(layers) == 3:
            self.layer4 = nn.Identity()  # keeps torchvision's forward and parameter names
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = self.inplanes
        self.fc = nn.Linear(self.num_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:  # Goyal et al.: each block starts as an identity
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled final-stage features (B, num_features): what transfer probes."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))

    def trunk_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights without the hashtag classifier (what `final/` holds)."""
        return {k: v for k, v in self.state_dict().items() if self.is_trunk_key(k)}

    @staticmethod
    def is_trunk_key(key: str) -> bool:
        """A state-dict key of the trunk, not of the classifier `fc`."""
        return not key.startswith("fc.")

    def freeze_trunk(self) -> ResNeXt:
        """Only `fc` trains from now on: the trunk's weights take no gradient and its
        batch-norm layers stay in eval mode (their statistics stay the pretrained ones)
        whatever `train()` is called with, as a frozen feature extractor must."""
        self._trunk_frozen = True
        for name, param in self.named_parameters():
            param.requires_grad_(not self.is_trunk_key(name))
        return self.train(self.training)

    def train(self, mode: bool = True) -> ResNeXt:
        super().train(mode)
        if self._trunk_frozen:
            for name, child in self.named_children():
                if name != "fc":
                    child.eval()
        return self


def _build(num_classes: int, depth: int, stages: int, **kwargs) -> ResNeXt:
    return ResNeXt(stage_layers(depth, stages), num_classes=num_classes, **kwargs)


@register_model
def resnext(num_classes: int = 1000, depth: int = 101, stages: int = 4, cardinality: int = 32,
            width_per_group: int = 4, base_width: int = 64, stem: str = "imagenet",
            **kwargs) -> ResNeXt:
    """Any member of the family: every knob free (what sweeps put on axes)."""
    return _build(num_classes, depth, stages, cardinality=cardinality,
                  width_per_group=width_per_group, base_width=base_width, stem=stem, **kwargs)


def _paper_member(width: int):
    fixed = {"depth": 101, "stages": 4, "cardinality": 32, "width_per_group": width,
             "base_width": 64}

    def builder(num_classes: int = 1000, stem: str = "imagenet", **kwargs) -> ResNeXt:
        for key, value in list(kwargs.items()):
            if key in fixed:
                if value != fixed[key]:
                    raise ConfigError(f"model.{key}={value!r} is invalid for "
                                      f"resnext101_32x{width}d (fixed at {fixed[key]}): "
                                      "use arch 'resnext' to change it")
                kwargs.pop(key)
        return _build(num_classes, stem=stem, **fixed, **kwargs)

    builder.__name__ = f"resnext101_32x{width}d"
    builder.__doc__ = f"ResNeXt-101 32x{width}d, as in Mahajan et al. 2018."
    return builder


for _width in (4, 8, 16, 32, 48):
    register_model(_paper_member(_width))
