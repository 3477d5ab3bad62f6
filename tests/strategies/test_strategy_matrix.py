"""Every strategy Flower 1.41 ships for model training, end to end: through the simulation
engine on dense payloads, in process on FedPara's and pFedPara's, each with the keyword
arguments it needs (listed here once; README.md's strategy table lists the same)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fedlite.config import RunConfig
from fedlite.records import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
FLOWER = "flwr.serverapp.strategy:"
INNER = {"strategy": FLOWER + "FedAvg"}  # a wrapper's inner strategy, as a nested spec
DP = {"noise_multiplier": 0.001, "num_sampled_clients": 4}
MATRIX = {  # strategy -> the kwargs it needs (4 clients; fedlite supplies the sampling ones)
    "FedAvg": {},
    "FedAvgM": {"server_momentum": 0.5},
    "FedProx": {"proximal_mu": 0.1},
    "FedAdagrad": {"eta": 0.05},
    "FedAdam": {"eta": 0.01},
    "FedYogi": {"eta": 0.01},
    "FedMedian": {},
    "FedTrimmedAvg": {"beta": 0.2},
    "Krum": {"num_malicious_nodes": 1},
    "MultiKrum": {"num_malicious_nodes": 1, "num_nodes_to_select": 2},
    "Bulyan": {"num_malicious_nodes": 0},
    "QFedAvg": {"q": 0.1},
    "DifferentialPrivacyServerSideFixedClipping": {**DP, "clipping_norm": 10.0,
                                                   "strategy": INNER},
    "DifferentialPrivacyServerSideAdaptiveClipping": {**DP, "initial_clipping_norm": 10.0,
                                                      "strategy": INNER},
    "DifferentialPrivacyClientSideFixedClipping": {**DP, "clipping_norm": 10.0,
                                                   "strategy": INNER},
    "DifferentialPrivacyClientSideAdaptiveClipping": {**DP, "initial_clipping_norm": 10.0,
                                                      "strategy": INNER},
}
BASE = {"dataset": "digits", "num-clients": 4, "partitioner": "iid", "num-rounds": 3}


def config(name: str, tmp_path: Path, **keys) -> RunConfig:
    return RunConfig.from_mapping({**BASE, "strategy": FLOWER + name,
                                   "strategy-kwargs": json.dumps(MATRIX[name]),
                                   "results-dir": str(tmp_path), **keys})


def recorded(summary: dict) -> list[dict]:
    return [json.loads(line) for line in
            (Path(summary["run-dir"]) / "rounds.jsonl").read_text().splitlines()]


def assert_trained(lines: list[dict]) -> None:
    trained = [line for line in lines if line["round"] >= 1]
    assert all(line["replies-rejected"] == 0 and line["round-skipped"] == 0 for line in trained)
    assert all(line["replies-failed"] == 0 for line in trained)
    assert trained[-1]["accuracy"] > trained[0]["accuracy"], [line["accuracy"] for line in trained]


@pytest.mark.integration
def test_every_flower_strategy_trains_through_the_simulation_engine(tmp_path):
    """One Flower simulation on Ray (one start-up, one actor pool) runs the 16 federations one
    after another on the same SuperNodes, each as ``fedlite run`` would: every strategy's
    client-side part (FedProx's mu, the clipping mods, QFedAvg's loss) is driven by the
    messages its strategy sends, so the nodes need nothing per strategy."""
    from flwr.serverapp import ServerApp

    from clients.client_app import app as client_app
    from simulations.engine import PROJECT_ROOT, Resources, backend_config
    from simulations.flower_runtime import run_in_process
    from strategies.server_app import preflight, run_federation

    configs = {name: preflight(config(name, tmp_path / name, **{"simulation-nodes": 4}))
               for name in MATRIX}
    lines: dict[str, list[dict]] = {name: [] for name in MATRIX}
    server_app = ServerApp()

    @server_app.main()
    def _main(grid, context) -> None:
        for name, cfg in configs.items():
            run_federation(grid, cfg, on_round=lines[name].append)

    first = next(iter(configs.values()))
    run_in_process(num_supernodes=first.nodes, client_app=client_app, server_app=server_app,
                   run_config=first.to_flower(),
                   backend_config=backend_config(Resources(num_cpus=1)),
                   app_dir=str(PROJECT_ROOT), verbose=False)
    for name in MATRIX:
        assert len(lines[name]) == 4, (name, "the federation did not complete")
        assert_trained(lines[name])


@pytest.mark.parametrize("mode", ["fedpara", "pfedpara"])
@pytest.mark.parametrize("name", list(MATRIX))
def test_every_flower_strategy_aggregates_factor_payloads(name, mode, tmp_path, in_process):
    summary = in_process(config(name, tmp_path, model="mlp", **{
        "fedpara.mode": mode, "fedpara.gamma": 0.5, "num-rounds": 2, "local-epochs": 2}))
    assert summary["failure"] is None
    lines = recorded(summary)
    assert all(line["replies-rejected"] == 0 for line in lines if line["round"] >= 1)


def test_fedprox_mu_zero_is_fedavg_bit_for_bit_and_mu_changes_the_update(tmp_path, in_process):
    def final(name: str, kwargs: dict) -> dict[str, np.ndarray]:
        cfg = RunConfig.from_mapping({**BASE, "num-rounds": 2, "model": "mlp",
                                      "strategy": FLOWER + name,
                                      "strategy-kwargs": json.dumps(kwargs),
                                      "results-dir": str(tmp_path / name / str(kwargs))})
        return load_checkpoint(in_process(cfg)["run-dir"])[1]

    fedavg = final("FedAvg", {})
    at_zero = final("FedProx", {"proximal_mu": 0.0})
    pulled = final("FedProx", {"proximal_mu": 1.0})
    for key, value in fedavg.items():
        np.testing.assert_array_equal(at_zero[key], value, err_msg=key)
    assert any(not np.array_equal(pulled[key], value) for key, value in fedavg.items())


def test_fedadam_on_a_fedpara_payload_keeps_float32_and_counts_the_bytes_sent(tmp_path,
                                                                          in_process):
    from fedlite.federation import data_for, initial_model
    from fedlite.wire import wire_state

    cfg = config("FedAdam", tmp_path, model="mlp", **{"fedpara.mode": "fedpara",
                                                      "fedpara.gamma": 0.5})
    summary = in_process(cfg)
    lines = recorded(summary)
    sent = ArrayRecord(wire_state(cfg, initial_model(cfg, data_for(cfg)))).count_bytes()
    for line in lines[1:]:
        assert line["replies-rejected"] == 0
        assert line["bytes-down"] == line["bytes-up"] == cfg.num_clients * sent
    _, arrays = load_checkpoint(summary["run-dir"])
    assert {str(a.dtype) for a in arrays.values()} == {"float32"}


@pytest.mark.usefixtures("server_identity")
@pytest.mark.parametrize("mode", ["fixed", "adaptive"])
def test_client_side_clipping_bounds_every_update(mode):
    from clients.client_app import app
    from clients.mods import CLIPPING_KEY
    from fedlite.federation import data_for, initial_model
    from fedlite.wire import wire_state

    cfg = RunConfig.from_mapping({**BASE, "model": "mlp", "lr": 0.5})
    sent = {k: v.numpy().copy()
            for k, v in wire_state(cfg, initial_model(cfg, data_for(cfg))).items()}
    bound = 0.05
    for client in range(cfg.num_clients):
        context = Context(run_id=1, node_id=client + 1, state=RecordDict(),
                          node_config={"partition-id": client, "num-partitions": 4},
                          run_config=cfg.to_flat())
        config_record = ConfigRecord({"server-round": 1, CLIPPING_KEY: mode,
                                      "clipping_norm": bound})
        message = Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in sent.items()}),
                                      "config": config_record}),
                          dst_node_id=client + 1, message_type="train")
        reply = app(message, context)
        arrays = {k: a.numpy() for k, a in reply.content["arrays"].items()}
        update = np.sqrt(sum(float(np.sum((arrays[k].astype(np.float64) - v) ** 2))
                             for k, v in sent.items()))
        assert update <= bound * (1 + 1e-5), update
        assert {str(a.dtype) for a in arrays.values()} == {"float32"}
        if mode == "adaptive":
            assert reply.content["metrics"]["norm_bit"] in (0, 1)


def test_the_readme_lists_the_same_strategies_and_kwargs():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(\{.*?\})` \|", readme, re.M)
    assert {name: json.loads(kwargs) for name, kwargs in rows} == MATRIX
