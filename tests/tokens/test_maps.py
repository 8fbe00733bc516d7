"""How teacher positions map to student positions (let_components/tokens/: same.py, bytes_aligned.py), no run."""

from types import SimpleNamespace

import pytest
import torch
from torchtitan.components.loss import IGNORE_INDEX

from let_components.guard import NonFiniteGuard
from let_components.terms.alignment import alignment_loss
from let_components.tokens.bytes_aligned import BytesAligned
from let_components.tokens.same import SameTokens

NO_DP = SimpleNamespace(dp_enabled=False)


def _microbatch(teacher_index: list[list[int]], labels: list[list[int]], lost: list[int]):
    index = torch.tensor(teacher_index)
    inputs = {"input": torch.zeros_like(index), "teacher_index": index, "teacher_lost": torch.tensor(lost),
              "teacher_input": torch.zeros(index.shape[0], 5, dtype=torch.long),
              "teacher_length": torch.full((index.shape[0],), 5),
              "teacher_head": torch.zeros(index.shape[0], dtype=torch.long)}
    return inputs, torch.tensor(labels)


def test_a_step_without_any_teacher_target_has_a_zero_term_and_logs_its_positions():
    """Every document failed the byte-cover check: 0 positions count, so the term is 0 (not 0/0 = NaN, which the
    guard would take for a broken teacher) and the step reports its 5 predicted positions without a target."""
    token_map = BytesAligned(lambda tokens: None)
    microbatches = [_microbatch([[-1, -1, -1], [-1, -1, -1]], [[1, 2, IGNORE_INDEX], [3, 4, 5]], [0, 0])]
    token_map.begin_step(microbatches, NO_DP, torch.device("cpu"))
    input_dict, labels = microbatches[0]
    teacher_batch = token_map.split(input_dict)
    valid = token_map.valid(labels, teacher_batch)
    assert not valid.any()
    student, teacher = torch.randn(2, 3, 8, requires_grad=True), torch.randn(2, 5, 8)
    term = alignment_loss(student, token_map.to_student(teacher, teacher_batch), valid)
    term = term / token_map.normaliser(torch.tensor(5.0))
    assert term.item() == 0.0
    term.backward()
    assert torch.equal(student.grad, torch.zeros_like(student))
    guard = NonFiniteGuard(torch.device("cpu"), "teacher", "alignment_loss")
    guard.record(alignment_loss=term)
    assert guard._marks.sum() == 0
    assert token_map.metrics() == {"lost": 0.0, "untargeted": 5.0}


def test_the_term_counts_its_own_positions_and_the_rest_are_untargeted():
    """3 of 6 predicted positions have a teacher token; of the 3 without, one was cut by teacher_seq_len (counted
    lost too). Both counts are summed over the micro-batches of the step."""
    token_map = BytesAligned(lambda tokens: None)
    microbatches = [_microbatch([[0, -1, 2]], [[7, 7, 7]], [1]), _microbatch([[-1, 1, -1]], [[7, 7, 7]], [0])]
    token_map.begin_step(microbatches, NO_DP, torch.device("cpu"))
    assert token_map.normaliser(torch.tensor(6.0)).item() == 3.0
    assert token_map.metrics() == {"lost": 1.0, "untargeted": 3.0}


def test_same_tokens_is_the_identity_and_divides_by_the_ce_count():
    token_map = SameTokens()
    labels = torch.tensor([[1, IGNORE_INDEX, 3]])
    target = torch.randn(1, 3, 4)
    assert token_map.split({"input": labels}) == {}
    assert token_map.to_student(target, {}) is target
    assert token_map.valid(labels, {}).tolist() == [[True, False, True]]
    assert token_map.normaliser(torch.tensor(17.0)).item() == pytest.approx(17.0)
