"""What a ClientApp reads from Flower's ``Context``: the run config (parsed once per process
per distinct config) and which partition (client) this node trains."""

from __future__ import annotations

from functools import lru_cache

from flwr.app import Context

from fedlite.config import RunConfig


@lru_cache(maxsize=8)
def _parse(items: tuple) -> RunConfig:
    return RunConfig.from_mapping(dict(items))


def config_of(context: Context) -> RunConfig:
    return _parse(tuple(sorted(context.run_config.items())))


def client_id_of(context: Context) -> int:
    return int(context.node_config["partition-id"])
