"""LET under pipeline parallelism trains as in one process: the teacher runs only on the ranks whose stages hold the
term's student side (block k, or the output head for logits), and the term joins that stage's backward microbatch
by microbatch (let_components/terms/pipeline.py). Compared on TensorBoard with tests/support/parallel.py.

A covering set rather than every combination: block k on the first stage and on the second, interpolate and linear
once each, logits once, GPipe, 1F1B and Interleaved1F1B, and a resume mid-alignment. Every run starts from one seed
checkpoint and trains 4 steps of one global batch (4 sequences of 64 tokens), the teacher teaching on steps 1-3.
The debug student's 6 blocks split as torchtitan splits them: blocks 0-2 on the first of 2 stages, 3-5 on the second.
"""

import pytest

from tests.support.parallel import (
    ALIGNMENT_TOLERANCES,
    BASELINE_TAGS,
    DISTILLATION_TOLERANCES,
    LET_LOGITS,
    LET_SAVING,
    ONE_PROCESS,
    BytesAligned,
    Layout,
    ParallelEquality,
    bytes_aligned_args,
    let_equality,
    pipeline,
)

LOSS, GRAD_NORM = BASELINE_TAGS
TOLERANCES = {LOSS: 1e-4, GRAD_NORM: 1e-4}
"""Largest allowed |PP - one process| per step (PP baselines match to the last bit: test_parallel_baseline.py)."""

FIRST_STAGE, SECOND_STAGE = ("--let.student_layer", "1"), ("--let.student_layer", "4")

ONE_PROCESS_FIRST = Layout("one process k1", args=FIRST_STAGE)
GPIPE_FIRST = Layout("PP=2 GPipe k1", ngpu=2, microbatch_size=1, log_ranks="0,1",
                     args=(*pipeline("GPipe").args, *FIRST_STAGE, *LET_SAVING))
INTERLEAVED_FIRST = Layout("PP=2 Interleaved1F1B k1", ngpu=2, microbatch_size=1,
                           args=(*pipeline("Interleaved1F1B").args, *FIRST_STAGE))
ONE_PROCESS_LOGITS = Layout("one process logits", args=LET_LOGITS)
GPIPE_LOGITS = Layout("PP=2 GPipe logits", ngpu=2, microbatch_size=1, args=(*pipeline("GPipe").args, *LET_LOGITS))


@pytest.fixture(scope="module")
def interpolate(tmp_path_factory) -> BytesAligned:
    """The debug LET run in every layout of this file but the linear one (one student shape, one seed); a teacher
    of another tokenizer aligned by bytes among them."""
    folder = tmp_path_factory.mktemp("pipeline_let")
    bytes_args = (*bytes_aligned_args(folder), *SECOND_STAGE)
    let = BytesAligned(let_equality(folder), Layout("one process bytes", args=bytes_args),
                       Layout("PP=2 GPipe bytes", ngpu=2, microbatch_size=1,
                              args=(*pipeline("GPipe").args, *bytes_args)))
    let.runs.start(ONE_PROCESS_FIRST, GPIPE_FIRST, INTERLEAVED_FIRST, ONE_PROCESS_LOGITS, GPIPE_LOGITS, let.reference,
                   let.layout)
    yield let
    let.runs.close()


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> tuple[ParallelEquality, Layout]:
    """projection = linear, block k on the second stage, 1F1B over two microbatches of 2 sequences: the projection
    travels with block k into the second stage's module."""
    runs = let_equality(tmp_path_factory.mktemp("pipeline_let_linear"), "--let.projection", "linear", *SECOND_STAGE)
    one_f_one_b = pipeline("1F1B", microbatch_size=2)
    runs.start(ONE_PROCESS, one_f_one_b)
    yield runs, one_f_one_b
    runs.close()


def test_block_k_on_the_first_stage_gpipe(interpolate):
    runs = interpolate.runs
    runs.assert_let_equal(GPIPE_FIRST, TOLERANCES, ALIGNMENT_TOLERANCES, ONE_PROCESS_FIRST)
    log = (runs.folder_of(GPIPE_FIRST) / "train.log").read_text()
    # the first stage loads the teacher, once; the second never does, and says so
    assert "[rank0]:" in log and "[rank1]:" in log
    assert [line.split("]:")[0] for line in log.splitlines() if "teacher loaded at step 1" in line] == ["[rank0"]
    assert "[rank1]:[titan]" in log.split("pipeline rank 1: its stages hold no part")[0].splitlines()[-1]


def test_block_k_on_the_second_stage_with_its_projection_1f1b(linear):
    runs, one_f_one_b = linear
    runs.assert_let_equal(one_f_one_b, TOLERANCES, ALIGNMENT_TOLERANCES, ONE_PROCESS)


def test_interleaved_stages(interpolate):
    """Two stages per rank (4 stages over 2 ranks): block 1 on stage 0 of rank 0."""
    interpolate.runs.assert_let_equal(INTERLEAVED_FIRST, TOLERANCES, ALIGNMENT_TOLERANCES, ONE_PROCESS_FIRST)


def test_logits_on_the_last_stage(interpolate):
    """signal = "logits" (SALT's mix): the teacher runs on the last stage, the CE keeps weight 1 - lambda there."""
    interpolate.runs.assert_let_equal(GPIPE_LOGITS, TOLERANCES, DISTILLATION_TOLERANCES, ONE_PROCESS_LOGITS)


def test_a_teacher_of_another_tokenizer_on_the_second_stage(interpolate):
    """token_alignment = "bytes", block 4 on the second stage: the first stage never loads the teacher, but its
    dataloader keeps the teacher's side of the data (the global count of teacher targets is every rank's)."""
    interpolate.runs.assert_let_equal(interpolate.layout, TOLERANCES, ALIGNMENT_TOLERANCES, interpolate.reference)


def test_a_resume_mid_alignment_under_pp_reproduces_the_uninterrupted_run(interpolate, tmp_path):
    log = interpolate.runs.assert_let_resume_reproduces(GPIPE_FIRST, tmp_path / "resumed")
    assert "Training starts at step 3" in log
