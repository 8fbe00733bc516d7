"""The teacher's LM loss (let_components/teacher/lm.py): chunked so a 262k vocabulary never holds a whole batch of
logits, with the same sums as the whole batch at once."""

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torchtitan.components.loss import IGNORE_INDEX

from let_components.teacher import lm as teacher_lm
from let_components.teacher.lm import TeacherLM
from let_components.tokens.per_byte import lm_loss_sums


def _teacher_lm(rows: int = 5, length: int = 7, vocab: int = 11) -> tuple[TeacherLM, torch.Tensor, list[slice]]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, length, vocab, generator=generator)
    labels = torch.randint(vocab, (rows, length), generator=generator)
    labels[0, :3] = labels[4, -1] = IGNORE_INDEX
    asked: list[slice] = []
    return TeacherLM(lambda part: asked.append(part) or logits[part], labels, vocab), logits, asked


def test_chunks_hold_at_most_the_budget_and_cover_every_row(monkeypatch):
    monkeypatch.setattr(teacher_lm, "LOGITS_PER_CHUNK", 2 * 7 * 11)  # two sequences of logits at a time
    lm, logits, asked = _teacher_lm()
    chunks = list(lm.chunks())
    assert asked == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert torch.equal(torch.cat([c for c, _, _ in chunks]), logits)
    asked.clear()
    list(lm.chunks(3))
    assert asked == [slice(0, 2), slice(2, 3)]


def test_chunked_sums_and_sanity_loss_equal_the_whole_batch(monkeypatch, caplog):
    byte_lengths = torch.arange(11) % 4  # ids 0, 4 and 8 stand for no text
    whole, logits, _ = _teacher_lm()
    expected = lm_loss_sums(logits, whole.labels, byte_lengths)
    expected_loss = F.cross_entropy(logits.flatten(0, 1), whole.labels.flatten(), ignore_index=IGNORE_INDEX)
    monkeypatch.setattr(teacher_lm, "LOGITS_PER_CHUNK", 1)  # one sequence at a time
    lm, _, asked = _teacher_lm()
    torch.testing.assert_close(lm.text_sums(5, byte_lengths), expected)
    assert len(asked) == 5
    caplog.set_level(logging.INFO)
    loss = lm.sanity_check(byte_lengths, "teacher")
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)
    nats, n_bytes, _ = expected.tolist()
    line = next(r.getMessage() for r in caplog.records if "sanity check" in r.getMessage())
    assert f"LM loss {expected_loss.item():.3f} nats per token" in line
    assert f"{nats / (math.log(2) * n_bytes):.3f} bits" in line and f"uniform guessing: {math.log(11):.3f}" in line
