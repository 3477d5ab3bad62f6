"""FSP matrices and loss: hand-computed values, zero loss and gradient for equal flows, errors."""

from __future__ import annotations

import pytest
import torch

from fedlite.models import build_model
from fedlite.train.fsp import fsp_loss, fsp_matrices, fsp_matrix
from fedlite.train.fsp.matrix import pooled_to


def test_matrix_of_a_hand_built_pair():
    # F1: 2 channels on 2x1 positions, F2: 1 channel; G_ij = sum_st F1_i F2_j / (h*w)
    first = torch.tensor([[[[1.0], [2.0]], [[3.0], [0.0]]]])  # (1, 2, 2, 1)
    last = torch.tensor([[[[4.0], [5.0]]]])  # (1, 1, 2, 1)
    expected = torch.tensor([[[(1 * 4 + 2 * 5) / 2], [(3 * 4 + 0 * 5) / 2]]])
    assert torch.allclose(fsp_matrix(first, last), expected)


def test_larger_map_is_max_pooled():
    first = torch.arange(16.0).reshape(1, 1, 4, 4)  # pooled 2x2 maxima: 5, 7, 13, 15
    last = torch.ones(1, 1, 2, 2)
    assert torch.allclose(fsp_matrix(first, last), torch.tensor([[[(5 + 7 + 13 + 15) / 4]]]))


@pytest.mark.parametrize("shape,size", [((3, 8, 16, 16), (8, 8)), ((3, 8, 16, 12), (4, 3)),
                                        ((3, 8, 7, 7), (4, 4)), ((3, 8, 6, 6), (6, 6))])
def test_pooling_to_a_size_equals_the_adaptive_pool_in_value_and_gradient(shape, size):
    # Prepare: random maps, a few exact ties so the gradient's routing is tested too
    torch.manual_seed(0)
    maps = torch.randn(*shape).round(decimals=1).requires_grad_()
    reference = maps.detach().clone().requires_grad_()
    weights = torch.randn(shape[0], shape[1], *size)
    # Execute: integer ratios take the plain max pool, others (7 -> 4) the adaptive one
    pooled = pooled_to(maps, size)
    (pooled * weights).sum().backward()
    expected = torch.nn.functional.adaptive_max_pool2d(reference, size)
    (expected * weights).sum().backward()
    # Assert: the same values, and the gradient reaches the same positions
    assert torch.equal(pooled, expected)
    assert torch.equal(maps.grad, reference.grad)


def test_loss_is_mean_squared_distance_per_section_summed():
    g_t = [torch.zeros(2, 1, 2), torch.zeros(2, 2, 2)]
    g_s = [torch.tensor([[[1.0, 1.0]], [[3.0, 3.0]]]), torch.ones(2, 2, 2)]
    # section 1: per-sample means 1 and 9 -> 5; section 2: 1
    assert fsp_loss(g_t, g_s).item() == pytest.approx(6.0)


def test_sum_form_is_the_patents_plain_squared_distance():
    g_t = [torch.zeros(2, 1, 2), torch.zeros(2, 2, 2)]
    g_s = [torch.tensor([[[1.0, 1.0]], [[3.0, 3.0]]]), torch.ones(2, 2, 2)]
    # section 1: per-sample sums 2 and 18 -> 10; section 2: 4 entries of 1 -> 4 (lambda = 1)
    assert fsp_loss(g_t, g_s, "sum").item() == pytest.approx(14.0)
    assert fsp_loss(g_t, g_s, "mean").item() == pytest.approx(6.0)
    with pytest.raises(ValueError, match="fsp.loss: choose one of mean, sum"):
        fsp_loss(g_t, g_s, "max")


def test_identical_teacher_and_student_give_zero_loss_and_zero_gradient():
    torch.manual_seed(0)
    student = build_model("resnet8", (1, 8, 8), 10)
    teacher = build_model("resnet8", (1, 8, 8), 10)
    teacher.load_state_dict(student.state_dict())
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        target = fsp_matrices(teacher.forward_sections(x)[1])
    loss = fsp_loss(target, fsp_matrices(student.forward_sections(x)[1]))
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in student.parameters())


def test_shape_mismatch_names_the_section_and_both_shapes():
    with pytest.raises(ValueError, match=r"section 2 .*teacher \(32, 32\), student \(16, 32\)"):
        fsp_loss([torch.zeros(1, 16, 16), torch.zeros(1, 32, 32)],
                 [torch.zeros(1, 16, 16), torch.zeros(1, 16, 32)])
