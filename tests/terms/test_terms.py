"""The teacher terms through the interface the step calls (terms/__init__.py), and the registry: a new signal is
one module and one `register_term` line, proven by a toy term trained through the real trainer."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from let_components.config import LET, LETConfigError
from let_components.terms import TERMS, term_option
from let_components.terms.alignment import AlignmentTerm
from let_components.terms.distillation import DistillationTerm
from let_components.tokens import token_alignment
from tests.support.logs import tb_scalars
from tests.support.runs import SHORT_RUN, TINY_BATCH, train_ok

LET_DEBUG = "train_configs/let_debug.toml"


class TwoBlocks(nn.Module):
    """What BlockCapture needs of a student: `layers` by name; block 0 doubles, block 1 adds 1."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleDict({"0": nn.Identity(), "1": nn.Identity()})

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layers["1"](self.layers["0"](h) * 2) + 1


def _job(**let) -> SimpleNamespace:
    return SimpleNamespace(let=LET(**let), compile=SimpleNamespace(enable=False, components=[]))


def test_alignment_term_reads_block_k_and_sums_minus_cosine_over_valid_positions():
    student_in = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]]])
    target = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    model = TwoBlocks()
    term = AlignmentTerm(_job(student_layer=0), [model])
    with term.watching():
        model(student_in)
    valid = torch.tensor([[True, True, False]])
    sums = term.sums(None, target, valid)
    # block 0 passes its input on: cos = 1 and 1/sqrt(2); the third position does not count
    assert sums.tolist() == pytest.approx([-(1 + 1 / math.sqrt(2))])
    assert term.combine(torch.tensor(2.0), sums[0] / 2, 0.1).item() == pytest.approx(2.0 - 0.1 * (1 + 0.5**0.5) / 2)
    assert term.metrics([-0.75]) == {"alignment_loss": -0.75, "cosine": 0.75}
    assert list(term.log_formats) == ["alignment_loss", "cosine"] and term.name == "alignment_loss"


def test_alignment_term_outside_watching_has_nothing_to_read():
    model = TwoBlocks()
    term = AlignmentTerm(_job(student_layer=1), [model])
    model(torch.ones(1, 2, 2))
    with pytest.raises(RuntimeError, match="student block 1 did not run"):
        term.sums(None, torch.ones(1, 2, 2), torch.ones(1, 2, dtype=torch.bool))


def test_distillation_term_sums_kl_and_agreement_by_hand():
    term = DistillationTerm(_job(signal="logits", kd_temperature=2.0), tokenizer_ids=3)
    student = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])
    teacher = torch.tensor([[[0.0, 2.0, 0.0], [4.0, 0.0, 0.0]]])
    valid = torch.tensor([[True, True]])
    kl, agree = term.sums(student, teacher, valid).tolist()
    p = F.softmax(teacher / 2.0, -1)
    expected = (4.0 * (p * (p.log() - F.log_softmax(student / 2.0, -1))).sum(-1)).sum().item()
    assert kl == pytest.approx(expected, rel=1e-6)
    assert agree == 1.0  # position 0: 0 vs 1 (argmax of a uniform row is 0); position 1: 0 vs 0
    assert term.metrics([kl, agree]) == {"distillation_loss": kl, "top1_agreement": 1.0}
    with term.watching():
        pass  # reads nothing of the student but its logits


def test_registered_signals_and_one_line_refusal_of_an_unknown_one():
    assert list(TERMS) == ["hidden", "logits"]
    with pytest.raises(LETConfigError, match=r"^let.signal='attention': valid are hidden, logits$"):
        term_option(_job(signal="attention"))
    with pytest.raises(LETConfigError, match="let.kd_temperature=0"):
        job = _job(signal="logits", kd_temperature=0.0)
        term_option(job).check_config(job, token_alignment(job))


TOY_TRAIN = '''
from contextlib import contextmanager

from let_components.terms import register_term
from let_components.terms.capture import BlockCapture
from recipes.train import main


class MeanGap:
    """A toy signal: block k's mean activation pulled toward the teacher state's (squared gap)."""

    name = "mean_gap"
    log_formats = {"mean_gap": "8.5f"}
    token_split = ("loss", "tp")

    def __init__(self, job_config, model_parts):
        self.capture = BlockCapture(model_parts, job_config.let.student_layer)
        self.student_side = self.capture.block

    def describe(self, job_config):
        return "toy term: mean gap"

    def teach(self, teacher, hidden):
        return hidden

    def lm_logits(self, teacher, target):
        return teacher.logits(target)

    @contextmanager
    def watching(self):
        with self.capture.capturing():
            yield

    def sums(self, pred, target, valid):
        gap = (self.capture.pop().float().mean(-1) - target.float().mean(-1)) ** 2
        return (gap * valid).sum().unsqueeze(0)

    def combine(self, ce, term, weight):
        return ce + weight * term

    def metrics(self, values):
        return {"mean_gap": values[0]}


class Toy:
    """The option: no keys of its own, any token alignment."""

    def check_config(self, job_config, alignment):
        pass

    def build(self, job_config, model_parts, tokenizer, vocab_size, teacher, parallel_dims):
        return MeanGap(job_config, model_parts)


register_term("toy", Toy())
main()
'''


def test_a_registered_toy_signal_trains_through_the_real_trainer(tmp_path):
    """One module and one register_term line: the pre-start checks accept --let.signal toy, the step calls it, the
    [LET] line, the metrics and the guard name it."""
    (tmp_path / "toy_train.py").write_text(TOY_TRAIN)
    log = train_ok(tmp_path / "run", LET_DEBUG, *SHORT_RUN, *TINY_BATCH, "--training.steps", "2",
                   "--let.stop_step", "2", "--let.signal", "toy",
                   env={"TRAIN_FILE": "toy_train", "PYTHONPATH": str(tmp_path)})
    assert "toy term: mean gap" in log
    gaps = tb_scalars(tmp_path / "run", "let/mean_gap")
    assert sorted(gaps) == [1, 2] and all(math.isfinite(gap) and gap > 0 for gap in gaps.values())
    assert "[LET] step:  2  lambda: 0.05000  mean_gap: " in log
