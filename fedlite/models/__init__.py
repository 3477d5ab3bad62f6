"""Models built by name: ``build_model("cnn", input_shape=(1, 28, 28), num_classes=10)``.

Image models take (C, H, W) inputs; ``lstm`` takes windows of character ids (``shakespeare``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fedlite.models.cnn import SmallCNN
from fedlite.models.lstm import CharLSTM
from fedlite.models.mlp import MLP
from fedlite.models.resnet import ResNet
from fedlite.models.vgg import VGG

__all__ = ["MLP", "MODELS", "SEQUENCE_MODELS", "CharLSTM", "ResNet", "SmallCNN", "VGG",
           "build_model"]


def _resnet(depth: int) -> Callable[..., nn.Module]:
    return lambda shape, classes: ResNet(depth, in_channels=shape[0], num_classes=classes)


MODELS: dict[str, Callable[[tuple[int, int, int], int], nn.Module]] = {
    "cnn": lambda shape, classes: SmallCNN(shape[0], classes, image_size=shape[1]),
    "mlp": lambda shape, classes: MLP(shape[0] * shape[1] * shape[2], classes),
    "vgg-small": lambda shape, classes: VGG("vgg-small", shape[0], classes, shape[1],
                                            classifier=(128,)),
    "vgg16": lambda shape, classes: VGG("vgg16", shape[0], classes, shape[1]),
    **{f"resnet{d}": _resnet(d) for d in (8, 14, 20, 26)},
    "continual-cnn": lambda shape, classes: _continual(shape, classes),
    # the vocabulary is the label set: the input ids and the predicted next character agree
    "lstm": lambda shape, classes: CharLSTM(classes),
}
SEQUENCE_MODELS = ("lstm",)


def _continual(shape: tuple[int, int, int], classes: int) -> nn.Module:
    # Deferred: fedlite.continual's model lives with its method (teacher + student pair).
    from fedlite.continual.model import ContinualNet

    return ContinualNet(shape, classes)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build a model from the registry; ``input_shape`` is (channels, height, width) for the
    image models and (window,) for the sequence models."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}")
    shape = tuple(input_shape)
    if name in SEQUENCE_MODELS and len(shape) != 1:
        raise ValueError(f"model {name} reads windows of character ids (dataset shakespeare), "
                         f"but this dataset holds images of shape {shape}: set `model` to an "
                         "image model such as cnn or resnet20")
    if name not in SEQUENCE_MODELS and len(shape) != 3:
        raise ValueError(f"model {name} reads images, but this dataset holds sequences of "
                         f"shape {shape}: set `model` to {' or '.join(SEQUENCE_MODELS)}")
    return MODELS[name](shape, num_classes)
