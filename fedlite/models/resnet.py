"""CIFAR-style ResNet (He et al. 2016, sec. 4.2): three sections of 16/32/64 channels.

Depth is 6n + 2 with n basic blocks per section (8, 14, 20, 26, ...). Growing in depth
keeps every section's widths equal, so FSP matrices of a ResNet-8 and a ResNet-26
have the same shapes. GroupNorm replaces BatchNorm for federated averaging.

Each residual block's last norm starts with zero scale (Goyal et al., arXiv:1706.02677,
sec. 5.1; torchvision's ``zero_init_residual``), so every block starts as its shortcut and a
deep network first trains like a shallow one. Without it the GroupNorm ResNet-20 started far
behind ResNet-8 and never caught up (docs/experiments/fsp.md).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

WIDTHS = (16, 32, 64)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.GroupNorm(groups, out_channels))

    def forward(self, x):
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-(6n+2); ``forward_sections`` exposes each section's first and last maps."""

    def __init__(self, depth: int = 20, in_channels: int = 3, num_classes: int = 10,
                 groups: int = 4, zero_init_residual: bool = True) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError("ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 26, ...), "
                             f"got {depth}")
        blocks = (depth - 2) // 6
        self.depth = depth
        self.stem = nn.Sequential(nn.Conv2d(in_channels, WIDTHS[0], 3, 1, 1, bias=False),
                                  nn.GroupNorm(groups, WIDTHS[0]), nn.ReLU())
        sections, channels = [], WIDTHS[0]
        for index, width in enumerate(WIDTHS):
            stride = 1 if index == 0 else 2
            layers = []
            for block in range(blocks):
                layers.append(BasicBlock(channels, width, stride if block == 0 else 1, groups))
                channels = width
            sections.append(nn.Sequential(*layers))
        self.sections = nn.ModuleList(sections)
        self.fc = nn.Linear(channels, num_classes)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.norm2.weight)

    def forward_sections(self, x: torch.Tensor
                         ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Return the logits and, per section, (its input map, its output map)."""
        out = self.stem(x)
        pairs = []
        for section in self.sections:
            first = out
            out = section(out)
            pairs.append((first, out))
        return self.head(out), pairs

    def head(self, out: torch.Tensor) -> torch.Tensor:
        """The logits from the last section's output map (global average pool, then fc)."""
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))

    def forward(self, x):
        return self.forward_sections(x)[0]
