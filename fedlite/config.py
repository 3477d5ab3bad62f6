"""The run configuration: read once from Flower's flat run config into typed, validated settings.

Keys are kebab-case; method settings live under a dotted namespace (``fedpara.gamma``), the
way Flower flattens nested TOML tables. ``RunConfig.from_mapping({})`` gives the defaults, so
the ServerApp also works when Flower hands it an empty run config.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

from fedlite.continual.settings import ContinualConfig
from fedlite.attack import AttackConfig
from fedlite.hadamard.settings import FedParaConfig
from fedlite.train.fsp.settings import FspConfig

DATASETS = ("auto", "digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "shakespeare")
HF_PREFIX = "hf:"  # hf:<name>: any Hugging Face image-classification dataset
PARTITIONERS = ("iid", "dirichlet", "pathological", "natural")
DEVICES = ("auto", "cpu", "cuda")
TRACKING = ("none", "tensorboard")


class ConfigError(ValueError):
    """A run-config key has a bad value or is unknown; the message names the key and the fix."""


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"run config `{key}`: {message}")


SKIP_PERIODS = ("epoch", "round")


@dataclass(frozen=True)
class SkipConfig:
    """Confidence-based backprop skipping (``fedlite.train.skip``): run-config keys ``skip.*``."""

    enabled: bool = False
    error_bound: float = 0.1  # share of the estimated gradient mass that skipping may drop
    bins: int = 10  # confidence bins over [0, 1]; tau is chosen among their edges
    period: str = "round"  # when tau is re-chosen from the accumulated histogram
    # a fresh selection forward every n-th local epoch; in between each sample's last
    # confidence is reused (Stale-SB). 1 = the seed: a selection forward for every mini-batch
    selection_every: int = 1
    # rounds at the start of the run that skip nothing while the histogram accumulates; the
    # first round always does (no threshold yet), so 0 and 1 behave alike
    warmup_rounds: int = 0

    def __post_init__(self) -> None:
        _require(0.0 <= self.error_bound < 1.0, "skip.error-bound",
                 "must be in [0, 1): the share of gradient mass that may be dropped "
                 "(0 skips nothing)")
        _require(self.bins >= 1, "skip.bins",
                 "must be a positive integer (number of confidence bins over [0, 1])")
        _require(self.period in SKIP_PERIODS, "skip.period",
                 f"choose one of {', '.join(SKIP_PERIODS)} (when the threshold is re-chosen)")
        _require(isinstance(self.selection_every, int) and self.selection_every >= 1,
                 "skip.selection-every",
                 "must be a positive integer (1: a selection forward for every mini-batch)")
        _require(isinstance(self.warmup_rounds, int) and self.warmup_rounds >= 0,
                 "skip.warmup-rounds",
                 "must be a whole number of rounds >= 0 (0: skip from the first threshold on)")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. Field ``foo_bar`` is run-config key ``foo-bar``."""

    # federation
    num_rounds: int = 10
    num_clients: int = 20
    seed: int = 0
    strategy: str = "flwr.serverapp.strategy:FedAvg"
    strategy_kwargs: str = "{}"
    fraction_train: float = 1.0
    fraction_evaluate: float = 0.0
    node_wait_timeout: float = 120.0
    round_timeout: float = 3600.0
    min_replies: int = 1  # fewer good replies within round-timeout: the round is skipped
    central_eval: bool = True
    central_eval_size: int = 0  # first N test samples; 0 = the whole test set
    # data
    dataset: str = "auto"
    data_dir: str = ""
    # dataset = "hf:<name>": the columns of its images and labels, the split the clients
    # share and the split of the central test set
    hf_image_column: str = "image"
    hf_label_column: str = "label"
    hf_train_split: str = "train"
    hf_test_split: str = "test"
    partitioner: str = "dirichlet"
    dirichlet_alpha: float = 0.5
    classes_per_client: int = 2
    client_test_fraction: float = 0.2
    client_train_size: int = 0  # cap on each client's training split; 0 = all of it
    # model and local training
    model: str = "cnn"
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    lr_decay: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    clip_grad_norm: float = 0.0  # max global gradient norm per step; 0 = no clipping
    device: str = "auto"
    # methods
    skip: SkipConfig = dataclasses.field(default_factory=SkipConfig)
    fedpara: FedParaConfig = dataclasses.field(default_factory=FedParaConfig)
    attack: AttackConfig = dataclasses.field(default_factory=AttackConfig)  # experiments only
    continual: ContinualConfig = dataclasses.field(default_factory=ContinualConfig)
    fsp: FspConfig = dataclasses.field(default_factory=FspConfig)
    # personalization: modules kept on the client (FedPer: "fc2"); federated=false is Local
    local_modules: str = ""
    federated: bool = True
    # records
    results_dir: str = "results"
    run_name: str = "run"
    tracking: str = "none"  # tensorboard: every round's scalars also go to results/<run-id>/tb/
    resume_from: str = ""  # a killed run's results/<run-id>.partial: continue after its checkpoint

    def __post_init__(self) -> None:
        _require(self.num_rounds >= 1, "num-rounds", "must be a positive integer")
        _require(self.seed >= 0, "seed", "must be a non-negative integer")
        _require(self.num_clients >= 1, "num-clients", "must be a positive integer")
        _require(self.dataset in DATASETS or self.dataset.startswith(HF_PREFIX), "dataset",
                 f"choose one of {', '.join(DATASETS)}, or hf:<name> for a Hugging Face dataset")
        for key in ("hf-image-column", "hf-label-column", "hf-train-split", "hf-test-split"):
            _require(bool(getattr(self, key.replace("-", "_")).strip()), key,
                     "must name a column or split of the Hugging Face dataset")
        _require(self.tracking in TRACKING, "tracking", f"choose one of {', '.join(TRACKING)}")
        _require(self.tracking != "tensorboard" or _installed("tensorboard"), "tracking",
                 "tensorboard is not installed: pip install 'fedlite[tensorboard]' "
                 "(or set tracking=none)")
        _require(self.partitioner in PARTITIONERS, "partitioner",
                 f"choose one of {', '.join(PARTITIONERS)}")
        _require(self.dirichlet_alpha > 0, "dirichlet-alpha",
                 "must be > 0 (smaller is more skewed; 0.5 is common)")
        _require(self.classes_per_client >= 1, "classes-per-client", "must be >= 1")
        _require(0.0 <= self.client_test_fraction < 1.0, "client-test-fraction",
                 "must be in [0, 1)")
        _require(self.client_train_size >= 0, "client-train-size",
                 "must be >= 0 (0 keeps each client's whole training split)")
        _require(0.0 < self.fraction_train <= 1.0, "fraction-train", "must be in (0, 1]")
        _require(0.0 <= self.fraction_evaluate <= 1.0, "fraction-evaluate", "must be in [0, 1]")
        _require(self.node_wait_timeout > 0, "node-wait-timeout", "must be > 0 seconds")
        _require(self.round_timeout > 0, "round-timeout", "must be > 0 seconds")
        _require(self.min_replies >= 1, "min-replies",
                 "must be >= 1 (good replies a round needs to change the global model)")
        _require(self.central_eval_size >= 0, "central-eval-size", "must be >= 0 (0 = all)")
        _require(self.local_epochs >= 1, "local-epochs", "must be a positive integer")
        _require(self.batch_size >= 1, "batch-size", "must be a positive integer")
        _require(self.lr > 0, "lr", "must be > 0")
        _require(0 < self.lr_decay <= 1, "lr-decay", "must be in (0, 1] (per-round factor)")
        _require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        _require(self.weight_decay >= 0, "weight-decay", "must be >= 0")
        _require(self.clip_grad_norm >= 0, "clip-grad-norm", "must be >= 0 (0 = no clipping)")
        _require(self.device in DEVICES, "device", f"choose one of {', '.join(DEVICES)}")
        _require(":" in self.strategy or "." in self.strategy, "strategy",
                 "give an import path such as 'flwr.serverapp.strategy:FedAvg' "
                 "or '/path/to/file.py:MyStrategy'")
        self.strategy_arguments()  # validates the JSON

    def strategy_arguments(self) -> dict[str, Any]:
        """The strategy's keyword arguments, decoded from ``strategy-kwargs`` (a JSON object)."""
        try:
            kwargs = json.loads(self.strategy_kwargs or "{}")
        except json.JSONDecodeError as err:
            raise ConfigError(f"run config `strategy-kwargs`: not valid JSON ({err}); "
                              "write e.g. '{\"fraction_train\": 0.5}'") from None
        _require(isinstance(kwargs, dict), "strategy-kwargs", "must be a JSON object")
        return kwargs

    def lr_at(self, server_round: int) -> float:
        """Learning rate for a round: ``lr * lr_decay ** (round - 1)``."""
        return self.lr * self.lr_decay ** (server_round - 1)

    # -- conversion -------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RunConfig:
        """Build from a flat mapping of kebab-case (dotted for sections) keys.

        Unknown keys are an error that suggests the closest known key.
        """
        known = dict(_walk(cls))
        nested: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else \
                    "; `fedlite keys` lists every key with its default"
                raise ConfigError(f"unknown run config key `{key}`{hint}")
            path, kind = known[key]
            slot = nested
            for part in path[:-1]:
                slot = slot.setdefault(part, {})
            slot[path[-1]] = _coerce(key, value, kind)
        return _build(cls, nested)

    def to_flat(self) -> dict[str, Any]:
        """The flat key mapping (what ``config.json`` and Flower's run config hold)."""
        flat: dict[str, Any] = {}
        for key, (path, _) in _walk(type(self)):
            value: Any = self
            for part in path:
                value = getattr(value, part)
            flat[key] = value
        return flat

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


def _installed(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


def _walk(cls: type, prefix: str = "", path: tuple[str, ...] = ()):
    """Yield (key, (attribute path, type)) for every leaf setting, sections flattened."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        key = prefix + f.name.replace("_", "-")
        if dataclasses.is_dataclass(kind):
            yield from _walk(kind, key + ".", path + (f.name,))
        else:
            yield key, (path + (f.name,), kind)


def _build(cls: type, nested: dict[str, Any]) -> Any:
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in nested.items():
        kind = hints[name]
        kwargs[name] = _build(kind, value) if dataclasses.is_dataclass(kind) else value
    return cls(**kwargs)


def _coerce(key: str, value: Any, kind: Any) -> Any:
    """Accept what TOML, Flower and the command line give (strings for numbers, ints for floats)."""
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return lowered in ("true", "1")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if isinstance(value, (dict, list)):  # a TOML table given for a JSON-valued key
            return json.dumps(value)
        return str(value)
    except (TypeError, ValueError):
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"run config `{key}`: expected {name}, got {value!r}") from None
