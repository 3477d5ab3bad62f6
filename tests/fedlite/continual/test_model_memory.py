"""The first model grows without touching old logits; prototypes are real samples nearest the
class mean; augmented points stay in range and keep the old classifier's label."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedlite.continual import augment, memory
from fedlite.continual.model import UNSEEN_LOGIT, ContinualNet, parameter_count

torch.set_num_threads(1)


def test_growing_keeps_old_logits_and_masks_unseen():
    torch.manual_seed(0)
    net = ContinualNet((1, 8, 8), 10).eval()
    x = torch.randn(16, 1, 8, 8)
    plain = net(x)
    net.set_seen([0, 1])
    before = net(x)
    net.set_seen([0, 1, 2, 3])  # grow by task 1's classes
    after = net(x)
    torch.testing.assert_close(after[:, :2], before[:, :2], rtol=0, atol=0)
    torch.testing.assert_close(after[:, :4], plain[:, :4], rtol=0, atol=0)
    assert (before[:, 2:] == UNSEEN_LOGIT).all() and (after[:, 4:] == UNSEEN_LOGIT).all()


def test_student_has_at_most_half_the_parameters():
    for shape in ((1, 8, 8), (1, 28, 28)):
        net = ContinualNet(shape, 10)
        assert parameter_count(net.student) <= 0.5 * parameter_count(net.teacher)


def test_prototype_is_the_real_sample_nearest_the_class_mean(digits):
    torch.manual_seed(0)
    branch = ContinualNet((1, 8, 8), 10).teacher
    x, y = digits.train_x[:400], digits.train_y[:400]
    protos, missing, radii = memory.select(branch, x, y, [3, 7])
    assert missing == [] and radii.feature > 0 and radii.embedding > 0
    assert protos.features is None  # a real sample's features are recomputed, not stored
    features = memory.features_of(branch, protos)
    for row, c in enumerate([3, 7]):
        f, z = memory.represent(branch, x[y == c])
        distances = (z - z.mean(0)).norm(dim=1)
        best = int(distances.argmin())
        assert distances[best] <= distances.min() + 1e-6
        torch.testing.assert_close(features[row], f[best])  # a real sample's features
        torch.testing.assert_close(protos.embeddings[row], z[best])
        torch.testing.assert_close(protos.samples[row], torch.as_tensor(x[y == c][best]))
        assert protos.labels[row] == c


def test_centres_are_the_class_mean_features_beside_the_prototype(digits):
    torch.manual_seed(0)
    branch = ContinualNet((1, 8, 8), 10).teacher
    x, y = digits.train_x[:400], digits.train_y[:400]
    plain, _, _ = memory.select(branch, x, y, [3, 7])
    assert plain.centres is None and memory.centres_of(branch, plain).shape == (2, 128)
    protos, _, _ = memory.select(branch, x, y, [3, 7], centres=True)
    torch.testing.assert_close(protos.samples, plain.samples)  # the prototype is unchanged
    for row, c in enumerate([3, 7]):
        f, _ = memory.represent(branch, x[y == c])
        torch.testing.assert_close(protos.centres[row], f.mean(0))
    torch.testing.assert_close(memory.centres_of(branch, protos), protos.centres)
    more, _, _ = memory.select(branch, x, y, [1], centres=True)
    merged = memory.merge(protos, more)
    state: dict[str, np.ndarray] = {}
    memory.store(state, merged)
    back = memory.load(state)
    assert back.labels.tolist() == [3, 7, 1] and back.centres.shape == (3, 128)
    torch.testing.assert_close(back.centres, merged.centres)


def test_class_without_samples_is_reported_not_invented(digits):
    branch = ContinualNet((1, 8, 8), 10).teacher
    y = digits.train_y[:200]
    keep = y != 5
    protos, missing, _ = memory.select(branch, digits.train_x[:200][keep], y[keep], [4, 5])
    assert missing == [5] and protos.labels.tolist() == [4]


def test_memory_round_trips_through_state():
    protos = memory.Prototypes(None, torch.randn(2, 3), torch.tensor([0, 1]),
                               torch.randn(2, 1, 8, 8))
    state: dict[str, np.ndarray] = {}
    memory.store(state, protos)
    back = memory.load(state)
    assert all(k.startswith("continual/") for k in state)
    assert back.features is None and "continual/proto-features" not in state
    torch.testing.assert_close(back.embeddings, protos.embeddings)
    torch.testing.assert_close(back.samples, protos.samples)
    assert back.labels.tolist() == [0, 1]
    means = memory.Prototypes(torch.randn(2, 6), protos.embeddings, protos.labels)
    memory.store(state, means)
    back = memory.load(state)
    assert back.samples is None  # PASS-style means carry no sample
    torch.testing.assert_close(back.features, means.features)


def test_memory_stores_per_class_only_the_sample_and_its_embedding(digits):
    """What an adaptive client keeps per old class: the prototype sample and its embedding
    (and label); features are recomputed from the sample."""
    branch = ContinualNet((1, 8, 8), 10).teacher
    protos, _, _ = memory.select(branch, digits.train_x[:300], digits.train_y[:300], [0, 1, 2])
    state: dict[str, np.ndarray] = {}
    memory.store(state, protos)
    sizes = {k: v.size for k, v in state.items()}
    assert sizes == {"continual/proto-embeddings": 3 * 64, "continual/proto-labels": 3,
                     "continual/proto-samples": 3 * 64}


def test_bounded_offsets_stay_inside_the_range():
    v = torch.randn(3, 5, 16) * torch.tensor([1e-3, 1.0, 1e3])[:, None, None]
    norms = augment.bounded(v, 0.7).norm(dim=-1)
    assert (norms <= 0.7 * (1 + 1e-6)).all() and (norms > 0).all()
    base, labels = torch.randn(3, 16), torch.tensor([0, 1, 2])
    points, drawn = augment.adaptive_points(base, labels, v, 0.7, 200,
                                            torch.Generator().manual_seed(0))
    offsets = points - base[drawn]
    assert (offsets.norm(dim=1) < 0.7 + 1e-6).all()


class _Head(nn.Module):
    def __init__(self, centres: torch.Tensor) -> None:
        super().__init__()
        self.centres = centres

    def forward(self, f):  # nearest-centre classifier as logits
        return -torch.cdist(f, self.centres)


def test_learned_vectors_keep_the_old_classifiers_label():
    # Two classes whose centres are 2 apart; a range of 1.5 lets naive offsets cross over.
    centres = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1])
    head = _Head(centres)
    generator = torch.Generator().manual_seed(0)
    v = augment.init_vectors(2, 32, 4, generator) * 4  # start near the edge of the range
    start = augment.bounded(v, 1.5) + centres[:, None]
    crossed = (head(start.reshape(-1, 4)).argmax(1) != labels.repeat_interleave(32))
    assert crossed.any()  # the test is not trivial
    fitted, report = augment.fit_vectors(v, centres, labels, head, 1.5, steps=200, lr=0.05,
                                         keep=1.0)
    assert report["continual-aug-label-kept"] == 1.0
    assert report["continual-aug-reach"] > 0.5  # spread out, not collapsed onto the prototype
    points = augment.bounded(fitted, 1.5) + centres[:, None]
    assert (head(points.reshape(-1, 4)).argmax(1) == labels.repeat_interleave(32)).all()


def test_fitting_stops_once_the_kept_share_is_reached_or_the_budget_is_spent():
    centres = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    labels, head = torch.tensor([0, 1]), _Head(centres)
    v = augment.init_vectors(2, 32, 4, torch.Generator().manual_seed(0)) * 4
    kept_at_start = augment.label_kept(v, centres, labels, head, 1.5)
    assert kept_at_start < 0.95
    _, enough = augment.fit_vectors(v, centres, labels, head, 1.5, steps=500, lr=0.05, keep=0.95)
    assert enough["continual-aug-label-kept"] >= 0.95 and enough["continual-aug-steps"] < 500
    _, spent = augment.fit_vectors(v, centres, labels, head, 1.5, steps=3, lr=0.05, keep=1.0)
    assert spent["continual-aug-steps"] == 3
    _, least = augment.fit_vectors(v, centres, labels, head, 1.5, steps=50, lr=0.05,
                                   keep=kept_at_start, min_steps=20)
    assert least["continual-aug-steps"] == 20  # kept from the start: the minimum is still fitted


def test_convex_mixes_of_kept_embedding_points_keep_their_class():
    """In the embedding space the old classifier is linear, so a class's region is convex: the
    random convex mixes training draws keep their class whenever the fitted points do."""
    torch.manual_seed(0)
    classifier = nn.Linear(8, 3)
    base = torch.randn(3, 8) * 3
    labels = classifier(base).argmax(1)
    v = augment.init_vectors(3, 8, 8, torch.Generator().manual_seed(1))
    fitted, report = augment.fit_vectors(v, base, labels, classifier, 2.0, steps=400, lr=0.05,
                                         keep=1.0)
    assert report["continual-aug-label-kept"] == 1.0
    points, drawn = augment.adaptive_points(base, labels, fitted, 2.0, 2000,
                                            torch.Generator().manual_seed(2))
    assert (classifier(points).argmax(1) == drawn).all()


def test_spreads_are_each_classs_feature_deviation_and_survive_the_state(digits):
    torch.manual_seed(0)
    branch = ContinualNet((1, 8, 8), 10).teacher
    x, y = digits.train_x[:400], digits.train_y[:400]
    plain, _, _ = memory.select(branch, x, y, [3, 7])
    assert plain.spreads is None
    protos, _, _ = memory.select(branch, x, y, [3, 7], centres=True, spreads=True)
    for row, c in enumerate([3, 7]):
        f, _ = memory.represent(branch, x[y == c])
        torch.testing.assert_close(protos.spreads[row], f.std(0))
    merged = memory.merge(protos, memory.select(branch, x, y, [1], centres=True,
                                                spreads=True)[0])
    state: dict[str, np.ndarray] = {}
    memory.store(state, merged)
    back = memory.load(state)
    assert back.spreads.shape == (3, 128)
    torch.testing.assert_close(back.spreads, merged.spreads)


def test_diagonal_points_follow_each_classs_spread_and_stay_non_negative():
    centres = torch.tensor([[1.0, 0.0, 5.0], [2.0, 2.0, 2.0]])
    spreads = torch.tensor([[0.0, 0.0, 0.0], [0.5, 2.0, 0.1]])
    labels = torch.tensor([4, 9])
    points, got = augment.diagonal_points(centres, spreads, labels, 20000,
                                          torch.Generator().manual_seed(0))
    assert (points >= 0).all() and set(got.tolist()) == {4, 9}
    torch.testing.assert_close(points[got == 4], centres[0].expand(int((got == 4).sum()), 3))
    mine = points[got == 9]
    # dimensions far from zero keep their spread; the clipped one is pushed up
    assert abs(float(mine[:, 0].std()) - 0.5) < 0.02 and abs(float(mine[:, 2].std()) - 0.1) < 0.01
    assert float(mine[:, 1].min()) == 0.0 and float(mine[:, 1].mean()) > 2.0
