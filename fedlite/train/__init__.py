"""The one local training loop and its attachment points."""

from fedlite.train.loop import (Batch, BatchGate, Callback, LossTerm, TrainResult, TrainSettings,
                                batches, evaluate, sgd, train)

__all__ = ["Batch", "BatchGate", "Callback", "LossTerm", "TrainResult", "TrainSettings", "batches",
           "evaluate", "sgd", "train"]
