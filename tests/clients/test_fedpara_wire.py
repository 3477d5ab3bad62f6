"""The ClientApp's handlers called directly with real Flower messages: what a FedPara,
pFedPara, FedPer or Local client sends back, and what it keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

import clients.client_app as client_app
from fedlite.config import RunConfig
from fedlite.federation import build_initial, data_for
from fedlite.wire import STATE_PREFIX, wire_state

pytestmark = pytest.mark.usefixtures("server_identity")


BASE = {"dataset": "digits", "num-clients": 4, "partitioner": "iid", "batch-size": 64}


def config(**keys) -> RunConfig:
    return RunConfig.from_mapping({**BASE, **{k.replace("_", "-"): v for k, v in keys.items()}})


def server_arrays(cfg: RunConfig) -> ArrayRecord:
    model, _ = build_initial(cfg, data_for(cfg))
    return ArrayRecord(wire_state(cfg, model))


def message(arrays: ArrayRecord, server_round: int = 1, kind: str = "train") -> Message:
    content = RecordDict({"arrays": arrays, "config": ConfigRecord({"server-round": server_round})})
    return Message(content, dst_node_id=1, message_type=kind)


def context(cfg: RunConfig, client: int = 0) -> Context:
    return Context(run_id=1, node_id=1, node_config={"partition-id": client, "num-partitions": 4},
                   state=RecordDict(), run_config=cfg.to_flat())


def local_state(ctx: Context) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in ctx.state["fedlite"].items() if k.startswith(STATE_PREFIX)}


def test_fedpara_reply_holds_factors_and_no_composed_weight():
    cfg = config(model="cnn", **{"fedpara.mode": "fedpara", "fedpara.gamma": 0.1})
    _, (report,) = build_initial(cfg, data_for(cfg))
    reply = client_app.train(message(server_arrays(cfg)), context(cfg))
    arrays = reply.content["arrays"]
    composed = {layer.shape for layer in report.layers}
    assert report.layers and any("fedpara_" in key for key in arrays)
    assert not [key for key, a in arrays.items() if tuple(a.shape) in composed]
    assert not [key for key in arrays if key.endswith("weight") and "conv" in key]


def test_pfedpara_local_factors_never_sent_and_persist(monkeypatch):
    cfg = config(model="mlp", **{"fedpara.mode": "pfedpara", "fedpara.gamma": 0.5})
    model, _ = build_initial(cfg, data_for(cfg))
    initial = {k: v.clone() for k, v in model.state_dict().items() if "fedpara_local_" in k}
    seen = []
    original = client_app.local_round

    def spy(model, *args, **kwargs):  # the local factors the round starts from
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()
                     if "fedpara_local_" in k})
        return original(model, *args, **kwargs)

    monkeypatch.setattr(client_app, "local_round", spy)
    ctx = context(cfg)
    first = client_app.train(message(server_arrays(cfg)), ctx)
    after_round_1 = local_state(ctx)
    # Another client trains in between on the same cached model object.
    client_app.train(message(server_arrays(cfg)), context(cfg, client=1))
    second = client_app.train(message(first.content["arrays"], server_round=2), ctx)
    for reply in (first, second):
        assert reply.content["arrays"].keys() and not [k for k in reply.content["arrays"]
                                                       if "local" in k]
    assert set(after_round_1) == {STATE_PREFIX + k for k in initial}
    for key, start in seen[2].items():  # round 2 of client 0 starts from its own round-1 values
        np.testing.assert_array_equal(start.numpy(), after_round_1[STATE_PREFIX + key])
        assert not torch.equal(start, initial[key])  # and they were trained


def test_fedper_keeps_its_local_module():
    cfg = config(model="mlp", local_modules="fc2")
    ctx = context(cfg)
    reply = client_app.train(message(server_arrays(cfg)), ctx)
    assert set(reply.content["arrays"]) == {"fc1.weight", "fc1.bias"}
    assert set(local_state(ctx)) == {STATE_PREFIX + "fc2.weight", STATE_PREFIX + "fc2.bias"}


def test_a_dense_client_keeps_no_arrays():
    cfg = config(model="mlp")
    ctx = context(cfg)
    reply = client_app.train(message(server_arrays(cfg)), ctx)
    assert set(reply.content["arrays"]) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert "fedlite" not in ctx.state or not local_state(ctx)


def test_local_clients_send_and_load_nothing():
    cfg = config(model="mlp", federated=False)
    ctx = context(cfg)
    reply = client_app.train(message(ArrayRecord({})), ctx)
    assert len(reply.content["arrays"]) == 0 and len(local_state(ctx)) == 4
    with pytest.raises(ValueError, match="unexpected.*fc1.weight"):
        client_app.train(message(server_arrays(config(model="mlp"))), ctx)


def test_shape_mismatch_names_layer_and_both_shapes():
    cfg = config(model="mlp", **{"fedpara.mode": "fedpara"})
    arrays = {k: v.numpy() for k, v in server_arrays(cfg).items()}
    arrays["fc1.fedpara_x1"] = np.zeros((3, 2), dtype=np.float32)
    expected = tuple(arrays["fc2.fedpara_x1"].shape)  # sanity: other keys unchanged
    assert expected
    with pytest.raises(ValueError, match=r"fc1\.fedpara_x1.*\(\d+, \d+\).*\(3, 2\)"):
        client_app.train(message(ArrayRecord({k: torch.from_numpy(v) for k, v in arrays.items()})),
                         context(cfg))


def test_missing_and_extra_keys_fail_clearly():
    cfg = config(model="mlp", **{"fedpara.mode": "pfedpara"})
    arrays = {k: torch.from_numpy(v.numpy()) for k, v in server_arrays(cfg).items()}
    arrays.pop("fc1.bias")
    arrays["fc1.fedpara_local_x2"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing \['fc1.bias'\].*fc1.fedpara_local_x2"):
        client_app.train(message(ArrayRecord(arrays)), context(cfg))


def test_pfedpara_client_without_state_initializes_it_and_says_so(monkeypatch):
    cfg = config(model="mlp", **{"fedpara.mode": "pfedpara", "fraction-evaluate": 1.0})
    logged = []

    class Log:
        def info(self, text, *args):
            logged.append(text % args)

    monkeypatch.setattr(client_app, "log", Log())
    ctx = context(cfg, client=2)
    reply = client_app.evaluate(message(server_arrays(cfg), kind="evaluate"), ctx)
    assert 0.0 <= reply.content["metrics"]["eval-accuracy"] <= 1.0
    assert any("client 2 has no local state" in line for line in logged)
    logged.clear()
    client_app.train(message(server_arrays(cfg)), ctx)  # still none saved: initializes again
    client_app.train(message(server_arrays(cfg), server_round=2), ctx)
    assert len(logged) == 1


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_train_reply_judges_the_trained_model_only_when_clients_evaluate(fraction):
    cfg = config(model="mlp", **{"fedpara.mode": "pfedpara", "fraction-evaluate": fraction})
    metrics = client_app.train(message(server_arrays(cfg)), context(cfg)).content["metrics"]
    assert ("trained-eval-accuracy" in metrics) == (fraction > 0)
    if fraction:
        assert 0.0 <= metrics["trained-eval-accuracy"] <= 1.0
