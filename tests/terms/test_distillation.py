"""The logit-distillation term (let_components/terms/distillation.py) against direct float64 torch references."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from let_components.config import LET, LETConfigError
from let_components.student import Student, StudentArgs
from let_components.terms.distillation import DistillationTerm, check_distillation_vocab, distillation_sums

IGNORE = -100


def _sums(student, teacher, labels, *args, **kwargs):
    """distillation_sums over the positions with a label, as the trainer calls it for one tokenizer."""
    return distillation_sums(student, teacher, labels != IGNORE, *args, **kwargs)


def _reference(student, teacher, labels, temperature, direction, vocab_limit=None):
    """sum over valid tokens of T^2 KL, straight from the definition, in float64 (F.kl_div: KL(target || input))."""
    if vocab_limit is not None:
        student, teacher = student[..., :vocab_limit], teacher[..., :vocab_limit]
    s = F.log_softmax(student.double() / temperature, -1)
    t = F.log_softmax(teacher.double() / temperature, -1)
    target, inp = (t, s) if direction == "forward" else (s, t)
    kl = F.kl_div(inp, target, log_target=True, reduction="none").sum(-1)
    return temperature**2 * (kl * (labels != IGNORE)).sum()


def _batch(vocab=50, seed=0):
    torch.manual_seed(seed)
    student, teacher = 3 * torch.randn(2, 7, vocab), 3 * torch.randn(2, 7, vocab)
    labels = torch.randint(0, vocab, (2, 7))
    labels[0, 5:] = IGNORE  # padded tokens
    labels[1, 0] = IGNORE
    return student, teacher, labels


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("chunk_tokens", [1, 4, 1024])
def test_kl_and_its_gradient_match_a_float64_reference(direction, temperature, chunk_tokens):
    student, teacher, labels = _batch()
    ours_input = student.clone().requires_grad_()
    total, _ = _sums(ours_input, teacher, labels, temperature, direction, chunk_tokens=chunk_tokens)
    (3.0 * total).backward()  # a non-unit upstream gradient, as the division by global valid tokens gives
    ref_input = student.double().requires_grad_()
    reference = _reference(ref_input, teacher, labels, temperature, direction)
    (3.0 * reference).backward()
    assert total.item() == pytest.approx(reference.item(), rel=1e-5)
    torch.testing.assert_close(ours_input.grad.double(), ref_input.grad, atol=1e-5, rtol=1e-4)
    # padded positions contribute nothing, and get no gradient
    assert ours_input.grad[0, 5:].abs().sum() == 0 and ours_input.grad[1, 0].abs().sum() == 0


def test_directions_differ_and_identical_distributions_give_zero():
    student, teacher, labels = _batch()
    forward, _ = _sums(student, teacher, labels, 2.0, "forward")
    reverse, _ = _sums(student, teacher, labels, 2.0, "reverse")
    assert forward.item() > 0 and reverse.item() > 0
    assert abs(forward.item() - reverse.item()) > 1e-3
    same, agreements = _sums(teacher + 5.0, teacher, labels, 2.0, "forward")  # softmax is shift-invariant
    assert same.item() == pytest.approx(0.0, abs=1e-4)
    assert agreements.item() == (labels != IGNORE).sum().item()


def test_rows_beyond_the_tokenizer_are_masked_out_of_both_distributions():
    """Pythia-style padding: 50 embedding rows, 45 token ids; the teacher puts large mass on a padded row."""
    student, teacher, labels = _batch()
    labels = labels.clamp(max=44).masked_fill(labels == IGNORE, IGNORE)
    teacher[..., 47] = 20.0  # a row no token ever uses
    student_input = student.clone().requires_grad_()
    total, agreements = _sums(student_input, teacher, labels, 1.5, "forward", vocab_limit=45)
    total.backward()
    reference = _reference(student, teacher, labels, 1.5, "forward", vocab_limit=45)
    assert total.item() == pytest.approx(reference.item(), rel=1e-5)
    unmasked, _ = _sums(student, teacher, labels, 1.5, "forward")
    assert unmasked.item() > total.item() + 10  # the padded row would dominate the KL
    assert student_input.grad[..., 45:].abs().sum() == 0  # padded rows get no gradient
    student_top = student[..., :45].argmax(-1)
    teacher_top = teacher[..., :45].argmax(-1)
    assert agreements.item() == ((student_top == teacher_top) & (labels != IGNORE)).sum().item()


def test_top1_agreement_counts_valid_tokens_where_the_argmaxes_agree():
    teacher = torch.zeros(1, 4, 5)
    teacher[0, torch.arange(4), torch.tensor([0, 1, 2, 3])] = 5.0
    student = torch.zeros(1, 4, 5)
    student[0, torch.arange(4), torch.tensor([0, 1, 4, 3])] = 5.0
    labels = torch.tensor([[1, 1, 1, IGNORE]])
    _, agreements = _sums(student, teacher, labels)
    assert agreements.item() == 2  # token 2 disagrees, token 3 is padding


def test_combine_add_and_mix():
    ce, kd = torch.tensor(2.0), torch.tensor(6.0)
    add, mix = (DistillationTerm(SimpleNamespace(let=LET(kd_combine=combine)), 64) for combine in ("add", "mix"))
    assert add.combine(ce, kd, 0.25).item() == pytest.approx(2.0 + 0.25 * 6.0)
    assert mix.combine(ce, kd, 0.25).item() == pytest.approx(0.75 * 2.0 + 0.25 * 6.0)


def _gradient_slope(weight: float, global_tokens: int) -> float:
    """The bf16 KD gradient of weight * KD / N against a float64 reference, as one least-squares factor over 131k
    elements: 1 when unbiased. Per element the error of a rounded scale is below bf16's half-ulp and cannot be told
    from rounding; over many elements it is a constant factor."""
    torch.manual_seed(0)
    student = (3 * torch.randn(256, 512)).bfloat16()
    teacher = (3 * torch.randn(256, 512)).bfloat16()
    valid = torch.ones(256, dtype=torch.bool)
    ours = student.clone().requires_grad_()
    total, _ = distillation_sums(ours, teacher, valid, chunk_tokens=64)
    scale = torch.tensor(weight, dtype=torch.float32) / global_tokens  # what the trainer's loss sends back: float32
    (total * scale).backward()
    reference = student.double().requires_grad_()
    (_sums_float64(reference, teacher.double()) * (weight / global_tokens)).backward()
    got, expected = ours.grad.double(), reference.grad
    return ((got * expected).sum() / (expected * expected).sum()).item()


def _sums_float64(student, teacher):
    s, t = F.log_softmax(student, -1), F.log_softmax(teacher, -1)
    return (t.exp() * (t - s)).sum()


@pytest.mark.parametrize("weight, global_tokens", [(0.1, 24_576), (0.07, 8_192)])
def test_bf16_gradient_is_scaled_in_float32_without_a_mean_bias(weight, global_tokens):
    # scaled by a bf16-rounded lambda / N the factor is off by the rounding of the scale: +0.34% for 0.1 / 24,576,
    # -0.25% for 0.07 / 8,192; scaled in float32 it stays at the rounding floor of the bf16 elements (0.02% here)
    rounded = torch.tensor(weight / global_tokens).bfloat16().item() / (weight / global_tokens)
    assert abs(rounded - 1) > 2e-3
    assert abs(_gradient_slope(weight, global_tokens) - 1) < 5e-4


def test_second_order_gradient_is_refused_not_silently_constant():
    student, teacher, labels = _batch()
    student.requires_grad_()
    total, _ = _sums(student, teacher, labels)
    with pytest.raises(RuntimeError, match="once-differentiable: create_graph=True is not supported"):
        torch.autograd.grad(total, student, create_graph=True)


def test_backward_through_a_retained_graph_twice_is_refused():
    """The gradient buffer is scaled in place: a second backward would scale it twice."""
    student, teacher, labels = _batch()
    student.requires_grad_()
    total, _ = _sums(student, teacher, labels)
    total.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward runs once"):
        total.backward()


def test_distillation_gradient_reaches_every_student_parameter():
    """Unlike the block-k alignment, the KL on the logits trains every block, the embedding and the LM head."""
    torch.manual_seed(0)
    model = Student(StudentArgs(dim=32, n_layers=4, n_heads=4, vocab_size=64, max_seq_len=16))
    with torch.no_grad():
        model.init_weights()
    tokens = torch.randint(0, 64, (2, 6))
    total, _ = _sums(model(tokens), 4 * torch.randn(2, 6, 64), torch.randint(0, 64, (2, 6)), 2.0)
    total.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_vocabulary_mismatch_is_a_one_line_error():
    with pytest.raises(LETConfigError, match="let.signal='logits': the student has 300 output rows") as error:
        check_distillation_vocab(300, 256, 256)
    assert "\n" not in str(error.value)
    check_distillation_vocab(50304, 50304, 50277)  # Pythia: fewer token ids than rows is fine (masked)
