"""The run configuration: read once from Flower's flat run config into typed, validated settings.

Keys are kebab-case; each method's settings live in its own package, under a dotted section
(``fedpara.gamma``) named by the method table (``fedlite.methods.table``), the way Flower
flattens nested TOML tables. ``RunConfig.from_mapping({})`` gives the defaults, so the
ServerApp also works when Flower hands it an empty run config.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fedlite.errors import ConfigError, require
from fedlite.fields import Key, coerce, keys_of, setting
from fedlite.methods import table
from fedlite.schedule import SCHEDULES, LrSchedule

DATASETS = ("auto", "digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "shakespeare")
HF_PREFIX = "hf:"  # hf:<name>: any Hugging Face image-classification dataset
PARTITIONERS = ("iid", "dirichlet", "pathological", "natural")
DEVICES = ("auto", "cpu", "cuda")
TRACKING = ("none", "tensorboard")

__all__ = ["ConfigError", "RunConfig", "Sections"]


@dataclass(frozen=True)
class Sections:
    """The methods' settings by section name: immutable and hashable, as ``RunConfig`` is."""

    items: tuple[tuple[str, Any], ...] = ()

    def __getitem__(self, name: str) -> Any:
        for key, value in self.items:
            if key == name:
                return value
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.items)

    def replace(self, name: str, value: Any) -> Sections:
        if name not in self:
            raise KeyError(name)
        return Sections(tuple((k, value if k == name else v) for k, v in self.items))


def default_sections() -> Sections:
    return Sections(tuple((name, cls()) for name, cls in table.sections()))


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. Field ``foo_bar`` is run-config key ``foo-bar``; the
    methods' sections are ``cfg.section(name)`` (``cfg.skip`` works too)."""

    # federation
    num_rounds: int = setting(10, "federated rounds to run")
    num_clients: int = setting(20, "clients (SuperNodes); each trains on its own partition")
    seed: int = setting(0, "one seed for the split, the initial model, batch order and client "
                           "sampling")
    strategy: str = setting("flwr.serverapp.strategy:FedAvg",
                            "any Flower Strategy as module:Class or /path/file.py:Class")
    strategy_kwargs: str = setting("{}", "the strategy's keyword arguments, a JSON object; a "
                                         "wrapper's inner strategy as {\"strategy\": PATH, "
                                         "\"strategy-kwargs\": {...}}")
    fraction_train: float = setting(1.0, "share of clients that train each round, in (0, 1]")
    fraction_evaluate: float = setting(0.0, "share of clients that evaluate on their own split "
                                            "each round")
    simulation_nodes: int = setting(0, "SuperNodes the federation has, each hosting about "
                                       "num-clients / this clients; 0 = one per client (fedlite "
                                       "run picks twice its Ray actors)")
    # exact for those strategies' weighted mean (strategies.reduction); robust strategies and
    # DP wrappers always get every client's reply
    node_reduction: bool = setting(True, "in a cohort simulation, host nodes sum their clients' "
                                         "training replies for FedAvg, FedAvgM, FedProx and "
                                         "FedOpt-family strategies; false: every reply travels")
    node_wait_timeout: float = setting(120.0, "seconds to wait for the SuperNodes to register "
                                              "before round 1")
    round_timeout: float = setting(3600.0, "seconds a round waits for replies")
    min_replies: int = setting(1, "good replies a round needs, else it is skipped and the model "
                                  "kept")
    central_eval: bool = setting(True, "evaluate the global model on the test set after every "
                                       "round")
    central_eval_size: int = setting(0, "first N test samples for central evaluation; 0 = all")
    # the next round's messages need only the aggregate, so the server evaluates round r while
    # the clients train round r+1 (strategies.round_pipeline); the records are the same
    central_eval_overlap: bool = setting(True, "central evaluation of round r (and its record "
                                               "and checkpoint) runs while round r+1 trains; "
                                               "false: in line, before round r+1 starts")
    # data
    dataset: str = setting("auto", "auto (Fashion-MNIST, else digits), digits, fashion-mnist, "
                                   "mnist, cifar10, cifar100, shakespeare, or hf:<name> (any "
                                   "Hugging Face image-classification dataset)")
    data_dir: str = setting("", "a directory holding the dataset's files; '' = the usual search "
                                "path")
    hf_image_column: str = setting("image", "dataset = hf:<name>: the column of its images")
    hf_label_column: str = setting("label", "dataset = hf:<name>: the column of its labels")
    hf_train_split: str = setting("train", "dataset = hf:<name>: the split the clients share")
    hf_test_split: str = setting("test", "dataset = hf:<name>: the split of the central test set")
    partitioner: str = setting("dirichlet", "iid, dirichlet (label skew), pathological (k "
                                            "classes per client) or natural (the dataset's own "
                                            "writers or speakers)")
    dirichlet_alpha: float = setting(0.5, "Dirichlet concentration; smaller is more skewed")
    classes_per_client: int = setting(2, "classes each client holds with the pathological "
                                         "partitioner")
    client_test_fraction: float = setting(0.2, "share of each client's data held out as its own "
                                               "test split")
    client_train_size: int = setting(0, "cap on each client's training split; 0 = all of it")
    # model and local training
    model: str = setting("cnn", "cnn, mlp, vgg-small, vgg16, resnet8/14/20/26, continual-cnn or "
                                "lstm (shakespeare)")
    local_epochs: int = setting(1, "local epochs per round")
    batch_size: int = setting(32, "mini-batch size")
    lr: float = setting(0.05, "SGD learning rate in round 1")
    lr_decay: float = setting(1.0, "per-round factor on lr (1 = constant)")
    lr_schedule: str = setting("constant", "constant, step (x0.1 at 50 % and 75 % of the rounds) "
                                           "or cosine (annealed over the rounds); lr-decay "
                                           "multiplies on top")
    momentum: float = setting(0.9, "SGD momentum")
    weight_decay: float = setting(0.0, "SGD weight decay")
    clip_grad_norm: float = setting(0.0, "max global gradient norm per step; 0 = no clipping")
    device: str = setting("auto", "auto (cuda when the worker sees a GPU), cpu or cuda")
    deterministic: bool = setting(False, "deterministic GPU kernels (cuDNN, cuBLAS); slower, "
                                         "needed for bit-identical runs on GPUs")
    # records
    results_dir: str = setting("results", "where results/<run-id>/ goes")
    run_name: str = setting("run", "prefix of the run id")
    tracking: str = setting("none", "none, or tensorboard: every round's scalars also go to "
                                    "results/<run-id>/tb/")
    resume_from: str = setting("", "a killed run's <run-id>.partial directory to continue")
    plot: bool = setting(True, "draw accuracy.png when the run completes (fedlite plot draws it "
                               "later)")
    # methods
    methods: str = setting("", "your own methods to attach: module:Class or /path/file.py:Class "
                               "of fedlite.methods.Method subclasses, comma-separated")
    methods_config: str = setting("{}", "your methods' keys as one JSON object: Flower's run "
                                        "config takes only pyproject's keys (fedlite fills it)")
    sections: Sections = dataclasses.field(default_factory=default_sections)

    def __post_init__(self) -> None:
        require(self.num_rounds >= 1, "num-rounds", "must be a positive integer")
        require(self.seed >= 0, "seed", "must be a non-negative integer")
        require(self.num_clients >= 1, "num-clients", "must be a positive integer")
        require(0 <= self.simulation_nodes <= self.num_clients, "simulation-nodes",
                f"must be in [0, num-clients={self.num_clients}] (0: one SuperNode per client)")
        require(self.dataset in DATASETS or self.dataset.startswith(HF_PREFIX), "dataset",
                f"choose one of {', '.join(DATASETS)}, or hf:<name> for a Hugging Face dataset")
        for key in ("hf-image-column", "hf-label-column", "hf-train-split", "hf-test-split"):
            require(bool(getattr(self, key.replace("-", "_")).strip()), key,
                    "must name a column or split of the Hugging Face dataset")
        require(self.tracking in TRACKING, "tracking", f"choose one of {', '.join(TRACKING)}")
        require(self.tracking != "tensorboard" or _installed("tensorboard"), "tracking",
                "tensorboard is not installed: pip install 'fedlite[tensorboard]' "
                "(or set tracking=none)")
        require(self.partitioner in PARTITIONERS, "partitioner",
                f"choose one of {', '.join(PARTITIONERS)}")
        require(self.dirichlet_alpha > 0, "dirichlet-alpha",
                "must be > 0 (smaller is more skewed; 0.5 is common)")
        require(self.classes_per_client >= 1, "classes-per-client", "must be >= 1")
        require(0.0 <= self.client_test_fraction < 1.0, "client-test-fraction",
                "must be in [0, 1)")
        require(self.client_train_size >= 0, "client-train-size",
                "must be >= 0 (0 keeps each client's whole training split)")
        require(0.0 < self.fraction_train <= 1.0, "fraction-train", "must be in (0, 1]")
        require(0.0 <= self.fraction_evaluate <= 1.0, "fraction-evaluate", "must be in [0, 1]")
        require(self.node_wait_timeout > 0, "node-wait-timeout", "must be > 0 seconds")
        require(self.round_timeout > 0, "round-timeout", "must be > 0 seconds")
        require(self.min_replies >= 1, "min-replies",
                "must be >= 1 (good replies a round needs to change the global model)")
        require(self.central_eval_size >= 0, "central-eval-size", "must be >= 0 (0 = all)")
        require(self.local_epochs >= 1, "local-epochs", "must be a positive integer")
        require(self.batch_size >= 1, "batch-size", "must be a positive integer")
        require(self.lr > 0, "lr", "must be > 0")
        require(0 < self.lr_decay <= 1, "lr-decay", "must be in (0, 1] (per-round factor)")
        require(self.lr_schedule in SCHEDULES, "lr-schedule",
                f"choose one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight-decay", "must be >= 0")
        require(self.clip_grad_norm >= 0, "clip-grad-norm", "must be >= 0 (0 = no clipping)")
        require(self.device in DEVICES, "device", f"choose one of {', '.join(DEVICES)}")
        require(":" in self.strategy or "." in self.strategy, "strategy",
                "give an import path such as 'flwr.serverapp.strategy:FedAvg' "
                "or '/path/to/file.py:MyStrategy'")
        self.strategy_arguments()  # validates the JSON

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields: a method's section (``cfg.skip``).
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or section {name!r}")

    def section(self, name: str) -> Any:
        """The settings of method section ``name`` (``""``: the top-level personalization keys)."""
        return self.sections[name]

    def strategy_arguments(self) -> dict[str, Any]:
        """The strategy's keyword arguments, decoded from ``strategy-kwargs`` (a JSON object)."""
        try:
            kwargs = json.loads(self.strategy_kwargs or "{}")
        except json.JSONDecodeError as err:
            raise ConfigError(f"run config `strategy-kwargs`: not valid JSON ({err}); "
                              "write e.g. '{\"fraction_train\": 0.5}'") from None
        require(isinstance(kwargs, dict), "strategy-kwargs", "must be a JSON object")
        return kwargs

    @property
    def nodes(self) -> int:
        """The SuperNodes this run's ServerApp waits for and sends to."""
        return self.simulation_nodes or self.num_clients

    def lr_at(self, server_round: int) -> float:
        """Learning rate for a round: ``lr * lr_decay ** (round - 1)`` times the schedule's
        factor over ``num-rounds`` (1 for ``constant``)."""
        return self.rates()(server_round)

    def rates(self) -> LrSchedule:
        """The run's learning-rate schedule over its ``num-rounds`` rounds."""
        return LrSchedule(self.lr, self.num_rounds, self.lr_schedule, self.lr_decay)

    # -- conversion -------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RunConfig:
        """Build from a flat mapping of kebab-case (dotted for sections) keys.

        The user methods named in ``methods`` join the table first, so their keys are known.
        Unknown keys are an error that suggests the closest known key.
        """
        if values.get("methods"):
            try:
                table.load(str(values["methods"]))
            except (ValueError, FileNotFoundError) as err:
                raise ConfigError(f"run config `methods`: {err}") from None
        values = {**values, **_unpacked(values.get("methods-config", "{}")),
                  "methods-config": "{}"}
        known = {key.name: (section, key) for section, key in all_keys()}
        core: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else \
                    "; `fedlite keys` lists every key with its default"
                raise ConfigError(f"unknown run config key `{name}`{hint}")
            section, key = known[name]
            target = core if section is None else nested.setdefault(section, {})
            target[key.attribute] = coerce(name, value, key.kind)
        sections = Sections(tuple((name, settings_cls(**nested.get(name, {})))
                                  for name, settings_cls in table.sections()))
        return cls(**core, sections=sections)

    def to_flat(self) -> dict[str, Any]:
        """The flat key mapping (what ``config.json`` and Flower's run config hold)."""
        flat: dict[str, Any] = {}
        for section, key in all_keys():
            owner = self if section is None else self.section(section)
            flat[key.name] = getattr(owner, key.attribute)
        return flat

    def to_flower(self) -> dict[str, Any]:
        """``to_flat`` for Flower's run config, which refuses keys that pyproject does not
        declare: the keys of user methods travel packed in ``methods-config``."""
        flat = self.to_flat()
        packed = {key.name: flat.pop(key.name) for section, key in all_keys()
                  if section is not None and not table.is_builtin(section)}
        flat["methods-config"] = json.dumps(packed)
        return flat

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with core fields and/or whole sections (by section name) replaced."""
        sections = self.sections
        for name in [n for n in changes if n in sections]:
            sections = sections.replace(name, changes.pop(name))
        return dataclasses.replace(self, sections=sections, **changes)

    def with_keys(self, changes: Mapping[str, Any]) -> RunConfig:
        """A copy with flat run-config keys changed, validated like any run config."""
        return RunConfig.from_mapping({**self.to_flat(), **changes})


def _unpacked(text: Any) -> dict[str, Any]:
    try:
        packed = json.loads(str(text))
    except json.JSONDecodeError as err:
        raise ConfigError(f"run config `methods-config`: not a JSON object ({err})") from None
    if not isinstance(packed, dict):
        raise ConfigError("run config `methods-config`: expected a JSON object of your "
                          "methods' keys, such as {\"toy.scale\": 0.1}")
    return packed


def _installed(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


def all_keys() -> Iterator[tuple[str | None, Key]]:
    """(section or None for the core, key) of every run-config key, in the order of
    pyproject.toml's defaults: the core's, then each method's in table order."""
    for key in keys_of(RunConfig):
        yield None, key
    for name, settings_cls in table.sections():
        for key in keys_of(settings_cls, name):
            yield name, key


def key_help() -> dict[str, str]:
    """Every key's one-line help, for ``fedlite keys`` and the docs."""
    return {key.name: key.help for _, key in all_keys()}
