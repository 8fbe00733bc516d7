import math

import pytest
import torch
import torch.nn.functional as F

from let_components.config import LET
from let_components.student import Student, StudentArgs
from let_components.terms.alignment import alignment_loss, interpolate_width
from let_components.terms.capture import BlockCapture


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("widths", [(2, 3), (3, 5), (576, 2048), (64, 48)])
def test_interpolation_is_torchs_linear_interpolation_with_either_corner_rule(align_corners, widths):
    """let.interpolate_align_corners picks F.interpolate's rule (the paper does not say which); true is the default
    every documented number was made with."""
    torch.manual_seed(0)
    teacher = torch.randn(2, 3, widths[0])
    expected = F.interpolate(teacher.reshape(6, 1, -1), size=widths[1], mode="linear", align_corners=align_corners)
    torch.testing.assert_close(interpolate_width(teacher, widths[1], align_corners), expected.reshape(2, 3, -1))
    assert LET().interpolate_align_corners is True


def test_the_two_corner_rules_give_different_targets():
    torch.manual_seed(0)
    teacher = torch.randn(64, 576)
    aligned, centred = interpolate_width(teacher, 2048, True), interpolate_width(teacher, 2048, False)
    assert F.cosine_similarity(aligned, centred, dim=-1).mean().item() < 0.99
    valid = torch.ones(1, 64, dtype=torch.bool)
    student = aligned[None]
    assert alignment_loss(student, teacher[None], valid).item() == pytest.approx(-64.0, abs=1e-3)
    assert alignment_loss(student, teacher[None], valid, align_corners=False).item() > -63.9


def test_interpolation_is_linear_with_aligned_corners():
    resized = interpolate_width(torch.tensor([[0.0, 2.0]]), 3)
    assert torch.allclose(resized, torch.tensor([[0.0, 1.0, 2.0]]))
    resized = interpolate_width(torch.tensor([[1.0, 4.0, 7.0]]), 5)
    assert torch.allclose(resized, torch.tensor([[1.0, 2.5, 4.0, 5.5, 7.0]]))


def test_interpolate_projection_against_hand_computation():
    student = torch.tensor([[[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]]])  # [B=1, S=2, d_s=3]
    teacher = torch.tensor([[[0.0, 2.0], [5.0, 5.0]]])  # [B=1, S=2, d_t=2] -> [0,1,2] and [5,5,5]
    cos0 = 3 / (math.sqrt(3) * math.sqrt(5))
    cos1 = 10 / (2 * math.sqrt(75))
    both = torch.tensor([[True, True]])
    assert alignment_loss(student, teacher, both).item() == pytest.approx(-(cos0 + cos1), abs=1e-6)
    # positions that do not count (ignored labels, no teacher target) add nothing, like torchtitan's cross-entropy
    assert alignment_loss(student, teacher, torch.tensor([[True, False]])).item() == pytest.approx(-cos0, abs=1e-6)


def test_cosine_is_scale_invariant_and_reaches_its_bounds():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 16), torch.randn(2, 5, 8)
    valid = torch.ones(2, 5, dtype=torch.bool)
    loss = alignment_loss(student, teacher, valid)
    assert loss.item() == pytest.approx(alignment_loss(3 * student, 0.5 * teacher, valid).item(), abs=1e-5)
    # against a direct float64 reference of -sum cos(student, interpolated teacher) over the 10 tokens
    resized = F.interpolate(teacher.double().reshape(-1, 1, 8), size=16, mode="linear", align_corners=True)
    reference = -F.cosine_similarity(student.double().reshape(-1, 16), resized.reshape(-1, 16), dim=-1).sum()
    assert loss.item() == pytest.approx(reference.item(), abs=1e-5)
    same = interpolate_width(teacher, 16)
    assert alignment_loss(same, teacher, valid).item() == pytest.approx(-10.0, abs=1e-5)
    assert alignment_loss(-same, teacher, valid).item() == pytest.approx(10.0, abs=1e-5)


def _tiny_student(projection_dim: int = 0) -> Student:
    torch.manual_seed(0)
    args = StudentArgs(dim=32, n_layers=4, n_heads=4, vocab_size=64, max_seq_len=16, projection_dim=projection_dim)
    model = Student(args)
    with torch.no_grad():
        model.init_weights()
    return model


def _forward_capturing(model: Student, tokens: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    capture = BlockCapture([model], layer)
    with capture.capturing():
        logits = model(tokens)
    return logits, capture.pop()


def test_linear_projection_against_hand_computation():
    model = _tiny_student(projection_dim=8)
    tokens = torch.randint(0, 64, (2, 6))
    logits, projected = _forward_capturing(model, tokens, 1)
    # the same block-1 output computed by hand, then W h
    h = model.tok_embeddings(tokens)
    for layer_id in ("0", "1"):
        h = model.layers[layer_id](h, model.freqs_cis, attention_masks=None)
    assert torch.allclose(projected, h @ model.let_projection.weight.t(), atol=1e-6)
    assert torch.allclose(logits, model(tokens), atol=1e-6)
    teacher = torch.randn(2, 6, 8)
    expected = -torch.nn.functional.cosine_similarity(h @ model.let_projection.weight.t(), teacher, dim=-1).sum()
    valid = torch.ones(2, 6, dtype=torch.bool)
    assert alignment_loss(projected, teacher, valid).item() == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.parametrize("projection_dim", [0, 8])
def test_alignment_gradient_of_the_unparallelized_student_reaches_blocks_up_to_k_only(projection_dim):
    model = _tiny_student(projection_dim)
    tokens = torch.randint(0, 64, (2, 6))
    _, hidden = _forward_capturing(model, tokens, 1)
    alignment_loss(hidden, torch.randn(2, 6, 8), torch.ones(2, 6, dtype=torch.bool)).backward()
    for name, param in model.named_parameters():
        reached = param.grad is not None and param.grad.abs().sum() > 0
        expect = name.startswith(("tok_embeddings", "layers.0.", "layers.1.", "let_projection"))
        assert reached == expect, name
