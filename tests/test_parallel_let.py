"""LET under tensor parallelism trains as in one process (issue: each TP rank aligns its own sequence shard of block k
against the matching slice of the teacher's targets): losses, gradient norms and the [LET] metrics, compared on
TensorBoard with tests/support/parallel.py.

Every run starts from one seed checkpoint and trains 4 steps of one global batch (4 sequences of 64 tokens, the
teacher teaching on steps 1-3) in float32 on CPU ranks. Tolerances are absolute: a shard aligned against the wrong
slice of the teacher's target, a projection gradient not summed over TP, or metrics not summed over the shards
miss them by orders of magnitude (the alignment term of a step is about 1e-2, the cosine's shard half of it).
"""

import pytest

from tests.support import parallel
from tests.support.parallel import (
    ALIGNMENT_TOLERANCES,
    DISTILLATION_TOLERANCES,
    LET_LOGITS,
    LET_SAVING,
    ONE_PROCESS,
    BytesAligned,
    Layout,
    ParallelEquality,
    bytes_aligned_args,
    let_equality,
)

LOSS, GRAD_NORM = parallel.BASELINE_TAGS
TOLERANCES = {LOSS: 1e-4, GRAD_NORM: 1e-3}
"""Largest allowed |TP - one process| per step. The gradient norm's is torch's float32 CPU `norm` over sharded
against whole tensors (tests/test_parallel_baseline.py: 2e-4 at equal gradients)."""

TP = ("--parallelism.tensor_parallel_degree", "2")
LOGITS = (*LET_LOGITS, "--parallelism.disable_loss_parallel")

CAUGHT_UP = ("--let.stop_when", "caught_up", "--let.caught_up_every", "1", "--let.caught_up_window", "2",
             "--let.caught_up_margin", "-5")
"""Checked every step, never deciding (margin -5 bits per byte): both losses per byte logged on each teaching step."""
CAUGHT_UP_TAGS = {"let/student_bits_per_byte": 1e-5, "let/teacher_bits_per_byte": 1e-5}

TP_INTERPOLATE = Layout("TP=2 interpolate", ngpu=2, args=(*TP, *LET_SAVING))
"""A TP run that also saves step 2, for the resume test."""
ONE_PROCESS_LOGITS = Layout("one process logits", args=LOGITS)
TP_LOGITS = Layout("TP=2 logits", ngpu=2, args=(*TP, *LOGITS))
FSDP = parallel.data_parallel()
FSDP_TP = Layout("FSDP=2 x TP=2", ngpu=4, dp=2, args=TP)


@pytest.fixture(scope="module")
def interpolate(tmp_path_factory) -> BytesAligned:
    """The debug LET run (projection = interpolate; logits distillation, and a teacher of another tokenizer aligned
    by bytes with the caught-up rule, from the same student weights) in every layout."""
    folder = tmp_path_factory.mktemp("parallel_let")
    bytes_args = (*bytes_aligned_args(folder), *CAUGHT_UP)
    let = BytesAligned(let_equality(folder), Layout("one process bytes", args=bytes_args),
                       Layout("TP=2 bytes", ngpu=2, args=(*TP, *bytes_args)))
    let.runs.start(ONE_PROCESS, TP_INTERPOLATE, ONE_PROCESS_LOGITS, TP_LOGITS, let.reference, let.layout, FSDP,
                   FSDP_TP)
    yield let
    let.runs.close()


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> tuple[ParallelEquality, Layout]:
    """projection = linear: the student's block k through a learned map to the teacher's width."""
    runs = let_equality(tmp_path_factory.mktemp("parallel_let_linear"), "--let.projection", "linear")
    tp = Layout("TP=2 linear", ngpu=2, args=TP)
    runs.start(ONE_PROCESS, tp)
    yield runs, tp
    runs.close()


def test_tp_aligns_each_sequence_shard_as_one_process_aligns_the_whole(interpolate):
    interpolate.runs.assert_let_equal(TP_INTERPOLATE, TOLERANCES, ALIGNMENT_TOLERANCES)


def test_tp_sums_the_learned_projections_gradient_over_its_shards(linear):
    runs, tp = linear
    runs.assert_let_equal(tp, TOLERANCES, ALIGNMENT_TOLERANCES)


def test_tp_distils_logits_with_loss_parallel_off(interpolate):
    interpolate.runs.assert_let_equal(TP_LOGITS, TOLERANCES, DISTILLATION_TOLERANCES, reference=ONE_PROCESS_LOGITS)


def test_tp_aligns_by_bytes_and_measures_the_caught_up_rule_unchanged(interpolate):
    """Another tokenizer's teacher, paired by bytes, and the caught-up rule's losses per byte (each TP rank measures
    the whole sequence: under loss parallel from its vocabulary shards made whole)."""
    interpolate.runs.assert_let_equal(interpolate.layout, TOLERANCES, {**ALIGNMENT_TOLERANCES, **CAUGHT_UP_TAGS},
                                      reference=interpolate.reference)


def test_fsdp_and_tp_together_match_fsdp_alone(interpolate):
    """4 processes: 2 data-parallel ranks (each its own half of the batch and its own documents) x 2 TP shards,
    against the 2-rank FSDP run that reads the same documents."""
    interpolate.runs.assert_let_equal(FSDP_TP, TOLERANCES, ALIGNMENT_TOLERANCES, reference=FSDP)


def test_a_resume_mid_alignment_under_tp_reproduces_the_uninterrupted_run(interpolate, tmp_path):
    """Checkpointed at step 2 while the teacher teaches (steps 1-3), resumed under TP=2: steps 3 and 4 - one more
    teaching step, then the teacher's release - as the uninterrupted run logged them."""
    log = interpolate.runs.assert_let_resume_reproduces(TP_INTERPOLATE, tmp_path / "resumed")
    assert "Training starts at step 3" in log and "teacher loaded at step 3" in log
