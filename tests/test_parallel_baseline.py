"""A baseline (let.enable = false) trains the same under pipeline and tensor parallelism as in one process
(let_components/student/pipeline.py and PreemptibleTrainer's step), compared on TensorBoard with
tests/support/parallel.py.

Every run starts from one seed checkpoint and trains 4 steps of one global batch (4 sequences of 64 tokens) in
float32 on CPU ranks. Tolerances are absolute and far above what the layouts' different order of additions gives
(PP matched the one-process run to the last bit here), far below what a wrong scaling or split gives.
"""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from let_components.config import LETConfigError
from let_components.pipeline_loss import ScheduleLoss, divide_loss_before_backward
from let_components.student.pipeline import pipeline_student
from tests.support.config import parse_config
from tests.support.parallel import ONE_PROCESS, ParallelEquality, pipeline, tensor_parallel
from tests.support.runs import SHORT_RUN

LOSS = "loss_metrics/global_avg_loss"
GRAD_NORM = "grad_norm"
TOLERANCES = {LOSS: 1e-4, GRAD_NORM: 1e-4}
"""Largest allowed |layout - one process| per step."""
TP_GRAD_NORM_TOLERANCE = 1e-3
"""torch's float32 CPU `norm` accumulates with relative errors of 1e-5 to 1e-4 (the output layer's gradient, 1M
elements): TP takes the norm of each shard, one process of the whole tensor, so the reported norms differ by about
1.5e-4 at equal gradients (those match to 1e-8 per parameter)."""

GPIPE = pipeline("GPipe")
ONE_F_ONE_B = pipeline("1F1B", microbatch_size=2)
INTERLEAVED = pipeline("Interleaved1F1B")
TP = tensor_parallel()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> ParallelEquality:
    """The debug baseline in every layout of this file, trained side by side from one seed, each once."""
    runs = ParallelEquality(
        tmp_path_factory.mktemp("parallel_baseline"), "train_configs/baseline_debug.toml",
        "--training.seq_len", "64", *SHORT_RUN, global_batch=4, steps=4,
    )
    runs.start(ONE_PROCESS, GPIPE, ONE_F_ONE_B, INTERLEAVED, TP)
    yield runs
    runs.close()


def test_pipeline_losses_match_one_process(runs):
    runs.assert_equal(GPIPE, {LOSS: TOLERANCES[LOSS]})


def test_pipeline_grad_norm_matches_one_process(runs):
    """torchtitan 0.2.2's schedule backwards the summed CE: without the division before backward the norm is
    global_valid_tokens (256) times the one-process one. The losses alone would not show it: both runs clip to
    training.max_norm = 1 here, and clipped AdamW does not see the gradient's scale."""
    runs.assert_equal(GPIPE, {GRAD_NORM: TOLERANCES[GRAD_NORM]})


def test_one_f_one_b_pipeline_matches_one_process(runs):
    """Two microbatches of 2 sequences: the microbatch sums, each divided by the step's valid tokens, add up."""
    runs.assert_equal(ONE_F_ONE_B, TOLERANCES)


def test_interleaved_pipeline_matches_one_process(runs):
    """Two stages per rank (4 stages over 2 ranks, torchtitan's default for a looped schedule), 4 microbatches."""
    runs.assert_equal(INTERLEAVED, TOLERANCES)


def test_tensor_parallel_matches_one_process(runs):
    runs.assert_equal(TP, {**TOLERANCES, GRAD_NORM: TP_GRAD_NORM_TOLERANCE})


def _summed_ce(pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(pred, labels, reduction="sum")


def test_schedule_loss_divides_only_inside_a_training_step():
    """Inside `divided_by` the schedule backwards sum / global valid tokens; outside (validation) the plain sum."""
    schedule = SimpleNamespace(_loss_fn=_summed_ce)
    loss = divide_loss_before_backward(schedule)
    assert isinstance(schedule._loss_fn, ScheduleLoss) and schedule._loss_fn is loss
    pred, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    summed = _summed_ce(pred, labels)
    with loss.divided_by(torch.tensor(24.0)):
        torch.testing.assert_close(loss(pred, labels), summed / 24)
    with pytest.raises(RuntimeError), loss.divided_by(torch.tensor(24.0)):
        raise RuntimeError("a failed step")
    torch.testing.assert_close(loss(pred, labels), summed)


def test_the_learned_projection_travels_with_block_k_into_its_stage():
    """torchtitan's split sets unnamed root modules to None in every stage: without its name in block k's stage a
    LET projection would vanish. A baseline (no projection) gets the family's split untouched."""
    from let_components.student.pipeline import with_projection

    calls = []
    pipeline = pipeline_student(lambda model, parallel_dims, job_config, *rest: calls.append(job_config) or "split")
    baseline = nn.Module()
    baseline.let_projection = None
    config = parse_config("train_configs/let_debug.toml", "--parallelism.pipeline_parallel_degree", "2")
    assert pipeline(baseline, SimpleNamespace(pp=2), config, None, SimpleNamespace(n_layers=6), None, None) == "split"
    assert calls[-1] is config
    projected = nn.Module()
    projected.let_projection = nn.Linear(4, 4)
    pipeline(projected, SimpleNamespace(pp=2), config, None, SimpleNamespace(n_layers=6), None, None)
    parts = calls[-1].parallelism.module_fqns_per_model_part
    assert parts == [["tok_embeddings", "layers.0", "layers.1", "layers.2", "let_projection"],
                     ["layers.3", "layers.4", "layers.5", "norm", "output"]]
    assert config.parallelism.module_fqns_per_model_part is None  # the shared config is left as it was
    with pytest.raises(LETConfigError, match="let.student_layer=9: no pipeline stage holds layers.9"):
        with_projection(parts, 9)
    assert pipeline_student(None) is None  # a family without pipelining (qwen3) stays without
