"""The distilled student's head steps: they fit the student's embedding module and classifier
to the teacher's on probes and current features, and leave its extractor alone."""

from __future__ import annotations

import torch

from fedlite.continual import augment
from fedlite.continual.head_distillation import current_features, distil_head
from fedlite.continual.model import ContinualNet

torch.set_num_threads(1)


def _head_error(net: ContinualNet, features: torch.Tensor) -> float:
    with torch.no_grad():
        z_t, l_t = net.teacher.head(features)
        z_s, l_s = net.student.head(features)
        agree = float((l_s.argmax(1) == l_t.argmax(1)).float().mean())
        return float((z_s - z_t).pow(2).mean() / z_t.pow(2).mean()), agree


def test_head_steps_bring_the_students_head_to_the_teachers_and_spare_its_extractor(digits):
    torch.manual_seed(0)
    net = ContinualNet((1, 8, 8), 10)
    net.set_seen([0, 1, 2, 3])
    x = torch.as_tensor(digits.train_x[:300])
    with torch.no_grad():
        features = net.teacher.features(x)
    centres = features[:4].clone()
    spreads = features.std(0).expand(4, -1).clone()
    labels = torch.tensor([0, 1, 2, 3])
    generator = torch.Generator().manual_seed(1)

    def probes(n):
        return augment.diagonal_points(centres, spreads, labels, n, generator)

    held_out = probes(512)[0]
    extractor = {k: v.clone() for k, v in net.student.features.state_dict().items()}
    before, agree_before = _head_error(net, held_out)
    steps = torch.Generator().manual_seed(2)
    loss = distil_head(net.student, net.teacher, probes, current_features(net.teacher, x, steps),
                       steps=300, lr=0.003, temperature=2.0, generator=steps)
    after, agree_after = _head_error(net, held_out)
    assert loss >= 0 and after < 0.1 * before, (before, after)
    assert agree_after > max(agree_before, 0.9), (agree_before, agree_after)
    for k, v in net.student.features.state_dict().items():
        torch.testing.assert_close(v, extractor[k], rtol=0, atol=0)
    assert not any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in net.teacher.parameters())
