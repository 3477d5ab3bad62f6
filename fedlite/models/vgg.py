"""VGG with GroupNorm in place of BatchNorm (BatchNorm statistics do not average well in FL)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    # Sized for 2 CPU cores on 28x28 inputs: the benchmark's convolution-heavy model.
    "vgg-small": [32, 32, "M", 64, 64, "M", 128, 128, "M"],
}


class VGG(nn.Module):
    """Conv-GroupNorm-ReLU stacks ("M" = max-pool), then a dense classifier.

    The classifier is ``Linear(c, h) ReLU ... Linear(h, num_classes)`` with one
    hidden layer per entry of ``classifier``; the FedPara paper's VGG16 uses
    (512, 512) and keeps these layers dense.
    """

    def __init__(self, config: str | Sequence[int | str] = "vgg16", in_channels: int = 3,
                 num_classes: int = 10, image_size: int = 32, groups: int = 2,
                 classifier: Sequence[int] = (512, 512), dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for item in CONFIGS[config] if isinstance(config, str) else config:
            if item == "M":
                if side >= 2:  # deep configs on small images stop pooling at 1x1
                    layers.append(nn.MaxPool2d(2))
                    side //= 2
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1),
                           nn.GroupNorm(groups, int(item)), nn.ReLU()]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        width = channels * side * side
        for hidden in classifier:
            head += [nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(self.features(x))
