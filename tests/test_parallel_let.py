"""LET under tensor parallelism trains as in one process (issue: each TP rank aligns its own sequence shard of block k
against the matching slice of the teacher's targets): losses, gradient norms and the [LET] metrics, compared on
TensorBoard with tests/support/parallel.py.

Every run starts from one seed checkpoint and trains 4 steps of one global batch (4 sequences of 64 tokens, the
teacher teaching on steps 1-3) in float32 on CPU ranks. Tolerances are absolute: a shard aligned against the wrong
slice of the teacher's target, a projection gradient not summed over TP, or metrics not summed over the shards
miss them by orders of magnitude (the alignment term of a step is about 1e-2, the cosine's shard half of it).
"""

import shutil

import pytest

from tests.support import parallel
from tests.support.parallel import ONE_PROCESS, Layout, ParallelEquality, bytes_aligned_args, max_differences
from tests.support.runs import SHORT_RUN, train_ok

LOSS, GRAD_NORM = parallel.BASELINE_TAGS
ALIGNMENT, COSINE = parallel.LET_TAGS
TOLERANCES = {LOSS: 1e-4, GRAD_NORM: 1e-3}
"""Largest allowed |TP - one process| per step. The gradient norm's is torch's float32 CPU `norm` over sharded
against whole tensors (tests/test_parallel_baseline.py: 2e-4 at equal gradients)."""
ALIGNMENT_TOLERANCES = {ALIGNMENT: 1e-5, COSINE: 1e-5}
DISTILLATION_TOLERANCES = {"let/distillation_loss": 1e-5, "let/top1_agreement": 1e-6}
TEACHING = range(1, 4)
"""The steps the teacher teaches (let.stop_step = 3): the [LET] metrics exist on them only."""

SHAPES = ("--training.seq_len", "64", "--let.stop_step", "3", *SHORT_RUN)
TP = ("--parallelism.tensor_parallel_degree", "2")
LOGITS = ("--let.signal", "logits", "--let.kd_combine", "mix", "--let.lambda_0", "0.5", "--let.schedule", "constant",
          "--parallelism.disable_loss_parallel")
SAVING = ("--checkpoint.no-load_only", "--checkpoint.interval", "2")
"""A TP run that also saves step 2, for the resume test (saving changes no number of the run)."""

CAUGHT_UP = ("--let.stop_when", "caught_up", "--let.caught_up_every", "1", "--let.caught_up_window", "2",
             "--let.caught_up_margin", "-5")
"""Checked every step, never deciding (margin -5 bits per byte): both losses per byte logged on each teaching step."""
CAUGHT_UP_TAGS = {"let/student_bits_per_byte": 1e-5, "let/teacher_bits_per_byte": 1e-5}

TP_INTERPOLATE = Layout("TP=2 interpolate", ngpu=2, args=(*TP, *SAVING))
ONE_PROCESS_LOGITS = Layout("one process logits", args=LOGITS)
TP_LOGITS = Layout("TP=2 logits", ngpu=2, args=(*TP, *LOGITS))
FSDP = parallel.data_parallel()
FSDP_TP = Layout("FSDP=2 x TP=2", ngpu=4, dp=2, args=TP)


@pytest.fixture(scope="module")
def interpolate(tmp_path_factory) -> ParallelEquality:
    """The debug LET run (projection = interpolate; logits distillation, and a teacher of another tokenizer aligned
    by bytes with the caught-up rule, from the same student weights) in every layout."""
    folder = tmp_path_factory.mktemp("parallel_let")
    bytes_args = (*bytes_aligned_args(folder), *CAUGHT_UP)
    runs = ParallelEquality(folder, "train_configs/let_debug.toml", *SHAPES, global_batch=4, steps=4)
    runs.bytes = Layout("one process bytes", args=bytes_args), Layout("TP=2 bytes", ngpu=2, args=(*TP, *bytes_args))
    runs.start(ONE_PROCESS, TP_INTERPOLATE, ONE_PROCESS_LOGITS, TP_LOGITS, *runs.bytes, FSDP, FSDP_TP)
    yield runs
    runs.close()


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> ParallelEquality:
    """projection = linear: the student's block k through a learned map to the teacher's width."""
    runs = ParallelEquality(tmp_path_factory.mktemp("parallel_let_linear"), "train_configs/let_debug.toml", *SHAPES,
                            "--let.projection", "linear", global_batch=4, steps=4)
    tp = Layout("TP=2 linear", ngpu=2, args=TP)
    runs.start(ONE_PROCESS, tp)
    yield runs, tp
    runs.close()


def assert_let_equal(runs: ParallelEquality, layout: Layout, term: dict[str, float],
                     reference: Layout = ONE_PROCESS) -> None:
    runs.assert_equal(layout, TOLERANCES, reference)
    runs.assert_equal(layout, term, reference, steps=TEACHING)


def test_tp_aligns_each_sequence_shard_as_one_process_aligns_the_whole(interpolate):
    assert_let_equal(interpolate, TP_INTERPOLATE, ALIGNMENT_TOLERANCES)


def test_tp_sums_the_learned_projections_gradient_over_its_shards(linear):
    runs, tp = linear
    assert_let_equal(runs, tp, ALIGNMENT_TOLERANCES)


def test_tp_distils_logits_with_loss_parallel_off(interpolate):
    assert_let_equal(interpolate, TP_LOGITS, DISTILLATION_TOLERANCES, reference=ONE_PROCESS_LOGITS)


def test_tp_aligns_by_bytes_and_measures_the_caught_up_rule_unchanged(interpolate):
    """Another tokenizer's teacher, paired by bytes, and the caught-up rule's losses per byte (each TP rank measures
    the whole sequence: under loss parallel from its vocabulary shards made whole)."""
    one_process, tp = interpolate.bytes
    assert_let_equal(interpolate, tp, {**ALIGNMENT_TOLERANCES, **CAUGHT_UP_TAGS}, reference=one_process)


def test_fsdp_and_tp_together_match_fsdp_alone(interpolate):
    """4 processes: 2 data-parallel ranks (each its own half of the batch and its own documents) x 2 TP shards,
    against the 2-rank FSDP run that reads the same documents."""
    assert_let_equal(interpolate, FSDP_TP, ALIGNMENT_TOLERANCES, reference=FSDP)


def test_a_resume_mid_alignment_under_tp_reproduces_the_uninterrupted_run(interpolate, tmp_path):
    """Checkpointed at step 2 while the teacher teaches (steps 1-3), resumed under TP=2: steps 3 and 4 - one more
    teaching step, then the teacher's release - as the uninterrupted run logged them."""
    full = interpolate.run(TP_INTERPOLATE)
    resumed = tmp_path / "resumed"
    shutil.copytree(full / "checkpoint" / "step-2", resumed / "checkpoint" / "step-2")
    log = train_ok(resumed, "train_configs/let_debug.toml", *SHAPES, "--training.steps", "4",
                   *TP_INTERPOLATE.train_args(4), "--checkpoint.enable", ngpu=2)
    assert "Training starts at step 3" in log and "teacher loaded at step 3" in log
    differences = max_differences(full, resumed, (LOSS, ALIGNMENT, COSINE), range(3, 4))
    differences |= max_differences(full, resumed, (LOSS, GRAD_NORM), range(4, 5))
    assert all(difference <= 1e-6 for difference in differences.values()), differences
