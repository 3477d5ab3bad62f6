"""Tasks on rounds, bad input, the client's continual round, two-teacher distillation, and the
server's metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedlite.config import ConfigError, RunConfig
from fedlite.arrays import load_arrays, state_arrays
from fedlite.continual import memory as mem
from fedlite.continual.client import adam, bound, reuse_head
from fedlite.continual.evaluation import ContinualTracker, forgetting
from fedlite.continual.losses import PrototypeAnchor, TwoTeacherKD
from fedlite.continual.method import Continual, adaptive_source
from fedlite.continual.tasks import check_holders, parse_tasks, task_plan
from fedlite.federation import data_for, initial_model, local_round, run_setup
from fedlite.seeding import derive_seed
from fedlite.train import TrainSettings, train
from fedlite.train.proximal import ProximalTerm

torch.set_num_threads(1)


def cfg_for(tmp_path, **keys) -> RunConfig:
    flat = {"dataset": "digits", "num-clients": 2, "partitioner": "iid", "model": "continual-cnn",
            "device": "cpu", "continual.enabled": True, "continual.rounds-per-task": 1,
            "num-rounds": 5, "continual.augment-steps": 3, "local-epochs": 1, "lr": 0.02,
            "results-dir": str(tmp_path / "results"), **keys}
    return RunConfig.from_mapping(flat)


def plan_of(cfg: RunConfig, num_classes: int = 10):
    return task_plan(cfg.section("continual"), cfg.num_rounds, num_classes)


def test_tasks_map_onto_rounds(tmp_path):
    plan = plan_of(cfg_for(tmp_path, **{"num-rounds": 10, "continual.rounds-per-task": 2}))
    assert plan.tasks == ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
    assert [plan.task_of_round(r) for r in range(0, 11)] == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert [r for r in range(1, 11) if plan.is_task_end(r)] == [2, 4, 6, 8, 10]
    assert plan.seen_classes(1) == (0, 1, 2, 3)
    assert parse_tasks("0 1, 2-4") == ((0, 1), (2, 3, 4))


@pytest.mark.parametrize("keys, message", [
    ({"continual.tasks": "0-2,2-9"}, "must not overlap"),
    ({"continual.tasks": "0-1,x"}, "cannot read"),
])
def test_bad_task_specs_fail_at_config_time(tmp_path, keys, message):
    with pytest.raises(ConfigError, match=message):
        cfg_for(tmp_path, **keys)


@pytest.mark.parametrize("keys, message", [
    ({"continual.tasks": "0-3,4-7", "num-rounds": 2}, r"classes \[8, 9\] are in no task"),
    ({"continual.tasks": "0-4,5-10", "num-rounds": 2}, r"classes \[10\] do not exist"),
    ({"continual.num-tasks": 3, "num-rounds": 3}, "do not split"),
    ({"num-rounds": 7}, "must be 5 tasks x"),
])
def test_bad_plans_fail_with_the_fix(tmp_path, keys, message):
    with pytest.raises(ConfigError, match=message):
        plan_of(cfg_for(tmp_path, **keys))


def test_a_class_no_client_holds_is_an_error():
    plan = parse_tasks("0-1,2-3")
    from fedlite.continual.tasks import TaskPlan

    with pytest.raises(ConfigError, match=r"task 1 has classes \[3\] that no client holds"):
        check_holders(TaskPlan(plan, 1), [np.array([0, 1, 2]), np.array([1, 2])])


def test_preflight_rejects_a_plain_model(tmp_path, partition_cache):
    cfg = cfg_for(tmp_path, model="cnn")
    data = data_for(cfg)
    with pytest.raises(ConfigError, match="continual-cnn"):
        Continual().check(cfg.section("continual"), run_setup(cfg, data, initial_model(cfg, data)))


def test_forgetting_is_best_earlier_minus_final():
    matrix = [[0.9], [0.5, 0.8], [0.6, 0.4, 0.7]]
    assert forgetting(matrix) == pytest.approx(((0.9 - 0.6) + (0.8 - 0.4)) / 2)
    assert forgetting([[0.9]]) == 0.0


def test_method_off_reproduces_plain_training(tmp_path, partition_cache):
    cfg = cfg_for(tmp_path, **{"continual.enabled": False, "model": "cnn", "num-rounds": 1})
    data = data_for(cfg)
    a, b = initial_model(cfg, data), initial_model(cfg, data)
    local_round(a, data.client(0), cfg, 1, 0, "cpu", {})
    settings = TrainSettings(epochs=cfg.local_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                             momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                             seed=derive_seed(cfg.seed, 1, 0))
    train(b, data.client(0).train_x, data.client(0).train_y, settings)
    for key, value in state_arrays(a).items():
        np.testing.assert_array_equal(value, state_arrays(b)[key])


def test_federated_tasks_build_memory_and_report_metrics(tmp_path, partition_cache):
    cfg = cfg_for(tmp_path)
    data = data_for(cfg)
    model = initial_model(cfg, data)
    setup = run_setup(cfg, data, model)
    Continual().check(cfg.section("continual"), setup)
    tracker = ContinualTracker(cfg.section("continual"), setup)
    global_arrays, states = state_arrays(model), [{}, {}]
    for server_round in range(1, 4):  # tasks 0, 1, 2
        summed, total = {}, 0
        for cid in range(2):
            load_arrays(model, global_arrays)
            result = local_round(model, data.client(cid), cfg, server_round, cid, "cpu",
                                 states[cid])
            for key, value in state_arrays(model).items():
                summed[key] = summed.get(key, 0) + value * result.num_examples
            total += result.num_examples
        global_arrays = {k: (v / total).astype(np.float32) for k, v in summed.items()}
        load_arrays(model, global_arrays)
        metrics = tracker.round_metrics(model, server_round)
    state = states[0]
    # After task 2 began: one prototype per class of tasks 0 and 1, and nothing from old data
    # beyond them (sample, embedding, label, the class's mean features the points surround and
    # their spread for the distilled student's probes), the old classifier and the vectors.
    assert sorted(state["continual/proto-labels"].tolist()) == [0, 1, 2, 3]
    assert state["continual/proto-samples"].shape == (4, 1, 8, 8)
    assert state["continual/vectors"].shape[:2] == (4, cfg.section("continual").vectors_per_class)
    assert {k.split("/")[1] for k in state} == {"proto-samples", "proto-embeddings",
                                                 "proto-labels", "proto-centres",
                                                 "proto-spreads", "radius",
                                                 "embed-radius", "vectors", "old-embedding-head",
                                                 "task"}
    # the old classifier only (10 classes x (64 + 1)), not the embedding module
    assert sum(v.size for k, v in state.items() if "old-embedding-head" in k) == 650
    assert sum(v.nbytes for v in state.values()) < 200_000  # travels in context.state
    assert result.method_metrics["continual-memory-classes"] == 4
    assert set(metrics) >= {"accuracy", "continual/task-2-accuracy", "continual/forgetting",
                            "continual/student-accuracy", "continual/average-incremental-accuracy"}
    assert metrics["continual/task"] == 2
    summary = tracker.summary()
    assert len(summary["teacher"]["task_accuracy"]) == 3
    assert summary["student"]["params"] <= summary["teacher"]["params"] / 2


def test_empty_memory_is_logged_and_counted(tmp_path, partition_cache):
    cfg = cfg_for(tmp_path)
    data = data_for(cfg)
    model = initial_model(cfg, data)
    client = data.client(0)
    keep = client.train_y >= 2  # this client never held task 0's classes
    from fedlite.data import ClientData

    lacking = ClientData(client.train_x[keep], client.train_y[keep], client.test_x, client.test_y)
    result = local_round(model, lacking, cfg, 2, 0, "cpu", state := {})
    assert result.method_metrics["continual-missing-prototypes"] == 2
    assert result.method_metrics["continual-empty-memory"] == 1
    assert "continual/proto-labels" not in state


def test_a_client_without_the_tasks_classes_replies_with_weight_zero_and_keeps_its_memory(
        tmp_path, partition_cache):
    # Dirichlet-split clients often hold none of a task's classes: such a client must still
    # finish its round (the student's head steps then fit on the probes alone), and at the
    # next boundary, finding none of the classes just finished, keep the memory it has.
    from fedlite.data import ClientData

    cfg = cfg_for(tmp_path)
    data = data_for(cfg)
    model = initial_model(cfg, data)
    client = data.client(0)
    keep = client.train_y < 2  # task 0's classes only
    lacking = ClientData(client.train_x[keep], client.train_y[keep], client.test_x, client.test_y)
    state: dict[str, np.ndarray] = {}
    local_round(model, lacking, cfg, 1, 0, "cpu", state)
    second = local_round(model, lacking, cfg, 2, 0, "cpu", state)  # task 1: classes 2 and 3
    assert second.num_examples == 0 and second.method_metrics["continual-empty-client"] == 1
    assert sorted(state["continual/proto-labels"].tolist()) == [0, 1]
    third = local_round(model, lacking, cfg, 3, 0, "cpu", state)  # none of 2, 3 to remember
    assert third.method_metrics["continual-missing-prototypes"] == 2
    assert sorted(state["continual/proto-labels"].tolist()) == [0, 1]
    assert state["continual/proto-samples"].shape == (2, 1, 8, 8)


def test_student_distillation_loss_falls_on_digits(digits):
    torch.manual_seed(0)
    from fedlite.continual.model import ContinualNet

    net = ContinualNet((1, 8, 8), 10)
    x, y = digits.train_x[:600], digits.train_y[:600]
    net.set_seen(range(10))
    train(net.teacher, x, y, TrainSettings(epochs=5, lr=0.05))
    kd = TwoTeacherKD(net.teacher, None, temperature=2.0)
    reuse_head(net.student, net.teacher)  # as the continual method's student step does
    losses = [train(net.student, x, y, TrainSettings(epochs=1, seed=e), task_loss=False,
                    loss_terms=[kd], make_optimizer=adam(0.003)).loss for e in range(6)]
    assert losses[-1] < 0.6 * losses[0], losses
    # The student's extractor lands in the teacher's feature space, where the head works.
    with torch.no_grad():
        net.teacher.eval()
        images = torch.as_tensor(x)
        f_t, f_s = net.teacher.features(images), net.student.features(images)
    assert float((f_s - f_t).pow(2).mean() / f_t.pow(2).mean()) < 0.2


def test_only_feature_matching_trains_the_students_extractor(digits):
    """The head terms (embedding cosine, KL) reach the student's head only: new-task batches
    cannot drag its extractor away from the teacher's feature space."""
    torch.manual_seed(0)
    from fedlite.continual.model import ContinualNet
    from torch.nn import functional as F

    net = ContinualNet((1, 8, 8), 10)
    net.set_seen(range(10))
    x, y = torch.as_tensor(digits.train_x[:64]), torch.as_tensor(digits.train_y[:64])
    grads = []
    for full in (True, False):
        net.student.zero_grad()
        logits = net.student(x)
        if full:
            loss = TwoTeacherKD(net.teacher, None, temperature=2.0)(net.student, x, y, logits)
        else:
            f_t = net.teacher.features(x).detach()
            loss = F.mse_loss(net.student.cache[0], f_t) / f_t.pow(2).mean()
        loss.backward()
        grads.append([p.grad.clone() for p in net.student.features.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_the_students_head_learns_at_a_scaled_rate():
    from fedlite.continual.model import ContinualNet

    student = ContinualNet((1, 8, 8), 10).student
    optimizer = adam(0.003, 0.1)(student, TrainSettings())
    rest, head = optimizer.param_groups
    assert rest["lr"] == 0.003 and head["lr"] == pytest.approx(0.0003)
    head_ids = {id(p) for p in head["params"]}
    assert head_ids == {id(p) for m in (student.embed, student.classifier) for p in m.parameters()}
    assert len(rest["params"]) + len(head["params"]) == len(list(student.parameters()))


def test_proximal_term_is_zero_at_the_start_and_grows_with_the_distance():
    layer = torch.nn.Linear(3, 2)
    term = ProximalTerm(list(layer.parameters()), weight=100.0, mean=True)
    x = torch.zeros(1, 3)
    assert float(term(layer, x, None, None)) == 0.0  # the first call takes the snapshot
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1)
    loss = term(layer, x, None, None)
    assert float(loss) == pytest.approx(100.0 * 0.01)
    loss.backward()  # the gradient points back to the start
    assert all((p.grad > 0).all() for p in layer.parameters())


def test_prototype_anchor_pulls_the_student_towards_the_teacher_on_the_samples(digits):
    from fedlite.continual.model import ContinualNet

    torch.manual_seed(0)
    net = ContinualNet((1, 8, 8), 10)
    net.set_seen(range(4))
    samples = torch.as_tensor(digits.train_x[:4])
    anchor = PrototypeAnchor(net.teacher, samples, weight=1.0, temperature=2.0)
    x = torch.as_tensor(digits.train_x[4:36])
    first = anchor(net.student, x, None, None)
    first.backward()
    assert all(p.grad is None for p in net.teacher.parameters())
    assert all(p.grad is not None for m in (net.student.embed, net.student.classifier)
               for p in m.parameters())
    # The extractor learns from the feature match alone (the head sees detached features).
    extractor = list(net.student.features.parameters())
    grads = [p.grad.clone() for p in extractor]
    with torch.no_grad():
        target = net.teacher.features(samples)
    net.zero_grad()
    (torch.nn.functional.mse_loss(net.student.features(samples), target)
     / target.pow(2).mean()).backward()
    assert all(torch.allclose(g, p.grad) for g, p in zip(grads, extractor, strict=True))
    optimizer = torch.optim.Adam(net.student.parameters(), lr=0.003)
    for _ in range(50):
        optimizer.zero_grad()
        anchor(net.student, x, None, None).backward()
        optimizer.step()
    assert float(anchor(net.student, x, None, None)) < 0.5 * float(first)


def test_anchor_blends_regress_the_teacher_between_stored_samples_and_the_batch(digits):
    from fedlite.continual.model import ContinualNet

    torch.manual_seed(0)
    net = ContinualNet((1, 8, 8), 10)
    net.set_seen(range(4))
    samples = torch.as_tensor(digits.train_x[:4])
    x = torch.as_tensor(digits.train_x[4:36])

    def anchor(mix: float, seed: int = 0) -> PrototypeAnchor:
        return PrototypeAnchor(net.teacher, samples, weight=1.0, temperature=2.0,
                               mix_weight=mix, generator=torch.Generator().manual_seed(seed))

    # Weight 0 is the anchor without blends, to the bit.
    assert torch.equal(anchor(0.0)(net.student, x, None, None),
                       PrototypeAnchor(net.teacher, samples, 1.0, 2.0)(net.student, x, None, None))
    # The blends: at least half a stored sample each, the rest one batch input.
    generator = torch.Generator().manual_seed(0)
    pick = torch.randint(len(samples), (len(x),), generator=generator)
    share = (0.5 + 0.5 * torch.rand(len(x), generator=generator)).view(-1, 1, 1, 1)
    assert (share >= 0.5).all()
    blend = share * samples[pick] + (1 - share) * x
    with torch.no_grad():
        target = net.teacher.features(blend)
        t_logits = net.teacher.head(target)[1][:, :4] / 2.0
    f_s = net.student.features(blend)
    s_logits = net.student.head(f_s)[1][:, :4] / 2.0
    expected = torch.nn.functional.mse_loss(f_s, target) / target.pow(2).mean() \
        + 4.0 * torch.nn.functional.kl_div(s_logits.log_softmax(1), t_logits.softmax(1),
                                           reduction="batchmean")
    assert float(anchor(1.0).mixed(net.student, x)) == pytest.approx(float(expected), rel=1e-4)
    # The logits' gradient runs through the student's own extractor (its whole branch learns);
    # the teacher gets none.
    net.zero_grad()
    anchor(2.0).mixed(net.student, x).backward()
    assert all(p.grad is None for p in net.teacher.parameters())
    assert all(p.grad.abs().sum() > 0 for p in net.student.parameters())
    # ... and the extractor's gradient is more than the feature regression's
    net.zero_grad()
    (torch.nn.functional.mse_loss(net.student.features(blend), target)
     / target.pow(2).mean()).backward()
    regression = [p.grad.clone() for p in net.student.features.parameters()]
    net.zero_grad()
    anchor(1.0).mixed(net.student, x).backward()
    assert not all(torch.allclose(g, p.grad) for g, p in
                   zip(regression, net.student.features.parameters(), strict=True))
    with pytest.raises(ConfigError, match="student-anchor-mix"):
        RunConfig.from_mapping({"continual.student-anchor-mix": -1.0})


def test_the_student_trains_for_its_own_number_of_epochs(tmp_path, partition_cache):
    def batches(scale: int) -> tuple[int, int]:
        cfg = cfg_for(tmp_path, **{"continual.student-epochs-scale": scale})
        data = data_for(cfg)
        model = initial_model(cfg, data)
        # Training batches only: the student's distillation also runs the teacher, in eval mode.
        counts = {"teacher": 0, "student": 0}
        for name in counts:
            getattr(model, name).features.register_forward_hook(
                lambda module, *_, name=name: counts.__setitem__(
                    name, counts[name] + module.training))
        local_round(model, data.client(0), cfg, 1, 0, "cpu", {})
        return counts["teacher"], counts["student"]

    (teacher_1, student_1), (teacher_3, student_3) = batches(1), batches(3)
    assert teacher_3 == teacher_1 > 0  # the teacher keeps the run's local-epochs
    assert student_3 == 3 * student_1
    with pytest.raises(ConfigError, match="student-epochs-scale"):
        cfg_for(tmp_path, **{"continual.student-epochs-scale": 0})


def _second_task_round(tmp_path, **keys):
    """Two rounds of one client (tasks 0 and 1); returns the model after round 2's local
    training, the global arrays it received and the round's metrics."""
    # five epochs: the old classifier must classify the prototypes themselves for their
    # neighbourhood to be keepable
    cfg = cfg_for(tmp_path, **{"num-clients": 1, "continual.augment-steps": 300,
                               "local-epochs": 5, **keys})
    data = data_for(cfg)
    model = initial_model(cfg, data)
    state: dict = {}
    local_round(model, data.client(0), cfg, 1, 0, "cpu", state)
    received = state_arrays(model)
    result = local_round(model, data.client(0), cfg, 2, 0, "cpu", state)
    return model, received, result.method_metrics


def test_vectors_fitted_at_the_boundary_keep_their_class(tmp_path, partition_cache):
    for space in ("embedding", "feature"):
        _, _, metrics = _second_task_round(tmp_path, **{"continual.augment-space": space})
        assert metrics["continual-aug-label-kept"] >= 0.95, (space, metrics)
        assert 20 <= metrics["continual-aug-steps"] <= 300


def test_augmented_points_surround_the_chosen_centre(tmp_path, partition_cache):
    """augment-centre = class-mean: the points surround the current embedding of the class's
    mean features; = prototype: of the prototype sample's. Every point lies within the range
    of its own class's centre, and only class-mean keeps the means in the client's state."""
    for centre in ("class-mean", "prototype"):
        cfg = cfg_for(tmp_path, **{"num-clients": 1, "continual.augment-centre": centre})
        data = data_for(cfg)
        model = initial_model(cfg, data)
        state: dict = {}
        local_round(model, data.client(0), cfg, 1, 0, "cpu", state)
        local_round(model, data.client(0), cfg, 2, 0, "cpu", state)
        memory = mem.load(state)
        teacher = model.teacher
        assert (memory.centres is not None) == (centre == "class-mean"), centre
        features = memory.centres if centre == "class-mean" else mem.features_of(teacher, memory)
        if centre == "class-mean":  # the means are not the prototype samples' features
            assert not torch.allclose(features, mem.features_of(teacher, memory))
        radius = bound(state, cfg.section("continual"), 64, "embedding")
        source = adaptive_source(teacher, memory, torch.as_tensor(state["continual/vectors"]),
                                 radius, "embedding", torch.Generator().manual_seed(0))
        with torch.no_grad():
            points, labels = source(64)
            centres = teacher.embed(features)
        for k, label in enumerate(memory.labels.tolist()):
            mine = points[labels == label]
            assert len(mine) and float((mine - centres[k]).norm(dim=1).max()) <= radius + 1e-4


def test_the_distilled_student_keeps_its_own_head(tmp_path, partition_cache):
    """student-head = distilled: the student's embedding module and classifier learn from the
    teacher's outputs, starting from the student's own received arrays; copied: they start as
    the teacher's."""
    for head, copied in (("distilled", False), ("copied", True)):
        model, received, _ = _second_task_round(tmp_path, **{"continual.student-head": head})
        start = received["student.classifier.weight"]
        teacher = model.teacher.classifier.weight.detach().numpy()  # as the teacher ended
        after = model.student.classifier.weight.detach().numpy()
        own = np.abs(after - start).mean()
        taken = np.abs(after - teacher).mean()
        assert (taken < own) == copied, (head, own, taken)


def test_bad_augment_space_and_student_head_name_their_key(tmp_path):
    with pytest.raises(ConfigError, match="continual.augment-space"):
        cfg_for(tmp_path, **{"continual.augment-space": "pixels"})
    with pytest.raises(ConfigError, match="continual.student-head"):
        cfg_for(tmp_path, **{"continual.student-head": "borrowed"})
    with pytest.raises(ConfigError, match="continual.augment-centre"):
        cfg_for(tmp_path, **{"continual.augment-centre": "median"})
    with pytest.raises(ConfigError, match="continual.augment-keep"):
        cfg_for(tmp_path, **{"continual.augment-keep": 1.5})


def test_the_embedding_module_adjusts_and_the_extractor_freeze_is_an_option(tmp_path,
                                                                           partition_cache):
    """Claim 7 adjusts the embedding module in every task; freezing the extractor after task 0
    is fedlite's choice (continual.freeze-extractor), and off it learns too."""
    def moved(received, after, prefix: str) -> bool:
        return any(np.abs(after[k[len("teacher."):]] - v).max() > 0
                   for k, v in received.items() if k.startswith(f"teacher.{prefix}"))

    for frozen in (True, False):
        model, received, _ = _second_task_round(
            tmp_path, **{"continual.freeze-extractor": frozen})
        after = {k: v.detach().numpy() for k, v in model.teacher.state_dict().items()}
        assert moved(received, after, "embed.") and moved(received, after, "classifier.")
        assert moved(received, after, "features.") is not frozen
