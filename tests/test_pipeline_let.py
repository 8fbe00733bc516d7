"""LET under pipeline parallelism trains as in one process: the teacher runs only on the ranks whose stages hold the
term's student side (block k, or the output head for logits), and the term joins that stage's backward microbatch
by microbatch (let_components/terms/pipeline.py). Compared on TensorBoard with tests/support/parallel.py.

A covering set rather than every combination: block k on the first stage and on the second, interpolate and linear
once each, logits once, GPipe, 1F1B and Interleaved1F1B, and a resume mid-alignment. Every run starts from one seed
checkpoint and trains 4 steps of one global batch (4 sequences of 64 tokens), the teacher teaching on steps 1-3.
The debug student's 6 blocks split as torchtitan splits them: blocks 0-2 on the first of 2 stages, 3-5 on the second.
"""

import shutil

import pytest

from tests.support.parallel import (
    BASELINE_TAGS,
    LET_TAGS,
    ONE_PROCESS,
    Layout,
    ParallelEquality,
    bytes_aligned_args,
    max_differences,
    pipeline,
)
from tests.support.runs import SHORT_RUN, train_ok

LOSS, GRAD_NORM = BASELINE_TAGS
TOLERANCES = {LOSS: 1e-4, GRAD_NORM: 1e-4}
"""Largest allowed |PP - one process| per step (PP baselines match to the last bit: test_parallel_baseline.py)."""
ALIGNMENT_TOLERANCES = dict.fromkeys(LET_TAGS, 1e-5)
DISTILLATION_TOLERANCES = {"let/distillation_loss": 1e-5, "let/top1_agreement": 1e-6}
TEACHING = range(1, 4)

SHAPES = ("--training.seq_len", "64", "--let.stop_step", "3", *SHORT_RUN)
FIRST_STAGE, SECOND_STAGE = ("--let.student_layer", "1"), ("--let.student_layer", "4")
LOGITS = ("--let.signal", "logits", "--let.kd_combine", "mix", "--let.lambda_0", "0.5", "--let.schedule", "constant")
SAVING = ("--checkpoint.no-load_only", "--checkpoint.interval", "2")

ONE_PROCESS_FIRST = Layout("one process k1", args=FIRST_STAGE)
GPIPE_FIRST = Layout("PP=2 GPipe k1", ngpu=2, microbatch_size=1, log_ranks="0,1",
                     args=(*pipeline("GPipe").args, *FIRST_STAGE, *SAVING))
INTERLEAVED_FIRST = Layout("PP=2 Interleaved1F1B k1", ngpu=2, microbatch_size=1,
                           args=(*pipeline("Interleaved1F1B").args, *FIRST_STAGE))
ONE_PROCESS_LOGITS = Layout("one process logits", args=LOGITS)
GPIPE_LOGITS = Layout("PP=2 GPipe logits", ngpu=2, microbatch_size=1, args=(*pipeline("GPipe").args, *LOGITS))


def assert_let_equal(runs: ParallelEquality, layout: Layout, term: dict[str, float], reference: Layout) -> None:
    runs.assert_equal(layout, TOLERANCES, reference)
    runs.assert_equal(layout, term, reference, steps=TEACHING)


@pytest.fixture(scope="module")
def interpolate(tmp_path_factory) -> ParallelEquality:
    """The debug LET run in every layout of this file but the linear one (one student shape, one seed); a teacher
    of another tokenizer aligned by bytes among them."""
    folder = tmp_path_factory.mktemp("pipeline_let")
    bytes_args = (*bytes_aligned_args(folder), *SECOND_STAGE)
    runs = ParallelEquality(folder, "train_configs/let_debug.toml", *SHAPES, global_batch=4, steps=4)
    runs.bytes = (Layout("one process bytes", args=bytes_args),
                  Layout("PP=2 GPipe bytes", ngpu=2, microbatch_size=1, args=(*pipeline("GPipe").args, *bytes_args)))
    runs.start(ONE_PROCESS_FIRST, GPIPE_FIRST, INTERLEAVED_FIRST, ONE_PROCESS_LOGITS, GPIPE_LOGITS, *runs.bytes)
    yield runs
    runs.close()


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> tuple[ParallelEquality, Layout, Layout]:
    """projection = linear, block k on the second stage, 1F1B over two microbatches of 2 sequences: the projection
    travels with block k into the second stage's module."""
    runs = ParallelEquality(tmp_path_factory.mktemp("pipeline_let_linear"), "train_configs/let_debug.toml", *SHAPES,
                            "--let.projection", "linear", *SECOND_STAGE, global_batch=4, steps=4)
    one_f_one_b = pipeline("1F1B", microbatch_size=2)
    runs.start(ONE_PROCESS, one_f_one_b)
    yield runs, one_f_one_b
    runs.close()


def test_block_k_on_the_first_stage_gpipe(interpolate):
    assert_let_equal(interpolate, GPIPE_FIRST, ALIGNMENT_TOLERANCES, ONE_PROCESS_FIRST)
    log = (interpolate.folder_of(GPIPE_FIRST) / "train.log").read_text()
    # the first stage loads the teacher, once; the second never does, and says so
    assert "[rank0]:" in log and "[rank1]:" in log
    assert [line.split("]:")[0] for line in log.splitlines() if "teacher loaded at step 1" in line] == ["[rank0"]
    assert "[rank1]:[titan]" in log.split("pipeline rank 1: its stages hold no part")[0].splitlines()[-1]


def test_block_k_on_the_second_stage_with_its_projection_1f1b(linear):
    runs, one_f_one_b = linear
    assert_let_equal(runs, one_f_one_b, ALIGNMENT_TOLERANCES, ONE_PROCESS)


def test_interleaved_stages(interpolate):
    """Two stages per rank (4 stages over 2 ranks): block 1 on stage 0 of rank 0."""
    assert_let_equal(interpolate, INTERLEAVED_FIRST, ALIGNMENT_TOLERANCES, ONE_PROCESS_FIRST)


def test_logits_on_the_last_stage(interpolate):
    """signal = "logits" (SALT's mix): the teacher runs on the last stage, the CE keeps weight 1 - lambda there."""
    assert_let_equal(interpolate, GPIPE_LOGITS, DISTILLATION_TOLERANCES, ONE_PROCESS_LOGITS)


def test_a_teacher_of_another_tokenizer_on_the_second_stage(interpolate):
    """token_alignment = "bytes", block 4 on the second stage: the first stage never loads the teacher, but its
    dataloader keeps the teacher's side of the data (the global count of teacher targets is every rank's)."""
    one_process, gpipe = interpolate.bytes
    assert_let_equal(interpolate, gpipe, ALIGNMENT_TOLERANCES, one_process)


def test_a_resume_mid_alignment_under_pp_reproduces_the_uninterrupted_run(interpolate, tmp_path):
    full = interpolate.run(GPIPE_FIRST)
    resumed = tmp_path / "resumed"
    shutil.copytree(full / "checkpoint" / "step-2", resumed / "checkpoint" / "step-2")
    log = train_ok(resumed, "train_configs/let_debug.toml", *SHAPES, "--training.steps", "4",
                   *GPIPE_FIRST.train_args(4), "--checkpoint.enable", ngpu=2, env={"LOG_RANK": "0,1"})
    assert "Training starts at step 3" in log
    differences = max_differences(full, resumed, (LOSS, *LET_TAGS), range(3, 4))
    differences |= max_differences(full, resumed, BASELINE_TAGS, range(4, 5))
    assert all(difference <= 1e-6 for difference in differences.values()), differences
