"""The one local training loop and its attachment points."""

from fedlite.lazy import exports

__all__ = ["Batch", "BatchGate", "Callback", "LossTerm", "TrainResult", "TrainSettings", "batches",
           "evaluate", "sgd", "train"]
__getattr__, __dir__ = exports(__name__, dict.fromkeys(__all__, "loop"))
