"""Build any Flower ``Strategy`` from an import path and keyword arguments, wrappers included.

A wrapper strategy (Flower's differential-privacy wrappers, or a user's) takes the strategy it
wraps as an argument. In ``strategy-kwargs`` that argument is given as a nested spec, the same
two keys as the run config's top level::

    strategy = "flwr.serverapp.strategy:DifferentialPrivacyServerSideFixedClipping"
    strategy-kwargs = '{"noise_multiplier": 0.1, "clipping_norm": 10, "num_sampled_clients": 4,
                        "strategy": {"strategy": "flwr.serverapp.strategy:FedAdam",
                                     "strategy-kwargs": {"eta": 0.01}}}'

(a bare import path string stands for an inner strategy without arguments). An argument counts
as a strategy when it is named ``strategy`` or annotated with a ``Strategy`` type.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator, Mapping
from typing import Any

from flwr.serverapp.strategy import FedXgbBagging, Strategy

from fedlite.importing import import_object

SPEC_KEYS = {"strategy", "strategy-kwargs"}

# Strategies that aggregate another kind of model than the torch arrays fedlite's clients send.
# Flower's FedXgbBagging merges XGBoost boosters, one serialized booster per reply, and would
# stop the run at the first aggregation; its cyclic sibling (FedXgbCyclic) only passes one
# client's model on, which works for any model.
OTHER_MODEL_KINDS = {
    FedXgbBagging: "it merges XGBoost trees (one serialized booster per reply), while fedlite's "
                   "clients send a torch model's arrays; use FedAvg or any other Flower "
                   "strategy, or FedXgbCyclic for one client per round",
}


def strategy_class(path: str) -> type[Strategy]:
    """The class at ``path``, checked to be a Flower ``Strategy``."""
    cls = import_object(path, "strategy")
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise ValueError(f"strategy {path!r} is {cls!r}, not a subclass of "
                         "flwr.serverapp.strategy.Strategy")
    for other, why in OTHER_MODEL_KINDS.items():
        if issubclass(cls, other):
            raise ValueError(f"strategy {path!r} cannot train fedlite's models: {why}")
    return cls


def load_strategy(path: str, kwargs: Mapping[str, Any],
                  defaults: Mapping[str, Any] | None = None) -> Strategy:
    """Instantiate the strategy class at ``path`` with ``kwargs`` (its own argument names);
    nested strategy specs are built the same way. ``defaults`` are given to every strategy
    of the nest whose constructor takes them, unless its kwargs say otherwise."""
    cls = strategy_class(path)
    accepted = accepted_arguments(cls)
    kwargs = dict(kwargs)
    for name in strategy_parameters(cls):
        if name in kwargs and isinstance(kwargs[name], (str, dict)):
            kwargs[name] = load_spec(kwargs[name], defaults, f"{cls.__name__}.{name}")
    unknown = sorted(set(kwargs) - accepted)
    if unknown and not takes_any_keyword(cls):
        raise ValueError(f"strategy-kwargs do not fit {cls.__name__}: unexpected "
                         f"{', '.join(repr(u) for u in unknown)}; it takes "
                         f"{', '.join(sorted(accepted))}")
    kwargs = {**{k: v for k, v in (defaults or {}).items() if k in accepted}, **kwargs}
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as err:
        raise ValueError(f"strategy-kwargs do not fit {cls.__name__}: {err}; it takes "
                         f"{', '.join(sorted(accepted))}") from None
    try:
        return cls(**kwargs)
    except TypeError as err:  # e.g. a subclass forwarding **kwargs to a parent that refuses
        raise ValueError(f"strategy-kwargs do not fit {cls.__name__}: {err}; it takes "
                         f"{', '.join(sorted(accepted))}") from None


def load_spec(spec: str | Mapping[str, Any], defaults: Mapping[str, Any] | None,
              where: str) -> Strategy:
    """A nested strategy: an import path, or ``{"strategy": PATH, "strategy-kwargs": {...}}``."""
    if isinstance(spec, str):
        return load_strategy(spec, {}, defaults)
    if not isinstance(spec, Mapping) or "strategy" not in spec or set(spec) - SPEC_KEYS:
        raise ValueError(f"strategy-kwargs `{where}`: give an import path or "
                         "{\"strategy\": \"module:Class\", \"strategy-kwargs\": {...}}, got "
                         f"{spec!r}")
    inner_kwargs = spec.get("strategy-kwargs", {})
    if not isinstance(inner_kwargs, Mapping):
        raise ValueError(f"strategy-kwargs `{where}.strategy-kwargs` must be a JSON object")
    return load_strategy(str(spec["strategy"]), inner_kwargs, defaults)


def nested(strategy: Strategy) -> Iterator[Strategy]:
    """``strategy`` and, depth first, the strategies it wraps (attributes holding one)."""
    yield strategy
    for value in vars(strategy).values():
        if isinstance(value, Strategy):
            yield from nested(value)


def _constructors(cls: type) -> Iterator[inspect.Signature]:
    """The constructors a call to ``cls`` reaches: its own, and its parents' as long as each
    forwards ``**kwargs`` (the usual way to extend FedAvg)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        signature = inspect.signature(init)
        yield signature
        if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            return


def accepted_arguments(cls_or_path: type | str) -> set[str]:
    """The keyword arguments the strategy's constructor takes by name, following ``**kwargs``
    to the parents."""
    cls = strategy_class(cls_or_path) if isinstance(cls_or_path, str) else cls_or_path
    names: set[str] = set()
    for signature in _constructors(cls):
        params = list(signature.parameters.values())[1:]  # drop self
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names


def takes_any_keyword(cls: type) -> bool:
    """Whether some constructor in the chain takes ``**kwargs`` without passing them on to a
    parent (then no name can be refused up front)."""
    signatures = list(_constructors(cls))
    last = signatures[-1] if signatures else None
    return last is not None and any(p.kind is p.VAR_KEYWORD for p in last.parameters.values())


def strategy_parameters(cls: type) -> list[str]:
    """Constructor arguments that take a strategy (named ``strategy`` or annotated so)."""
    found = []
    for signature in _constructors(cls):
        for name, param in list(signature.parameters.items())[1:]:
            if name == "strategy" or _is_strategy_annotation(param.annotation, cls):
                found.append(name)
    return found


def _is_strategy_annotation(annotation: Any, cls: type) -> bool:
    if isinstance(annotation, str):  # postponed annotations: judge by the named type
        names = [part.strip().rsplit(".", 1)[-1] for part in annotation.split("|")]
        return any(name.endswith("Strategy") for name in names)
    candidates = typing.get_args(annotation) or (annotation,)
    return any(inspect.isclass(c) and issubclass(c, Strategy) for c in candidates)
