"""With LET on, torchtitan's features still apply to the student on CPU ranks: torch.compile, activation
checkpointing, and FSDP2 with gradient accumulation.

Each feature run is compared step by step with a run that differs only in that feature. Tolerances, from
runs on the project's 2-core CPU machine (torch 2.13, 5 steps, stop_step 3, batch 2 x 64):
- activation checkpointing (full, selective per-layer, selective per-op) reproduced every CE and alignment value
  bit for bit (max |diff| 0): recomputation replays the same kernels, so 1e-6 (about one float32 ulp of a loss
  near 8.7) is already generous.
- compile (per-block student, compiled alignment loss, compiled teacher) matched CE bit for bit and the
  alignment loss to 3e-9. Inductor may reorder reductions on other CPUs' vector widths and Adam's first,
  sign-like updates can grow such differences over a few steps, so the bound is 1e-4; a missing or wrong
  alignment term moves the alignment loss (a cosine of order 1e-2 here) by far more.
- 2 ranks x 2 microbatches vs 2 ranks x 1 batch of twice the size (the same samples per step): max |diff|
  1e-6 in CE (one ulp) and 7e-10 in the alignment loss; bound 1e-5.
"""

from pathlib import Path

import pytest

from tests.support import ASSETS
from tests.support.logs import assert_same_scalars, let_lines, tb_scalars
from tests.support.runs import SHORT_RUN, TINY_BATCH, train_ok
from tests.support.teachers import save_llama

LET_DEBUG = "train_configs/let_debug.toml"
STEPS, STOP_STEP = 5, 3
# one thread per rank: behaviour, not speed, is under test on a shared 2-core machine
ENV = {"OMP_NUM_THREADS": "1"}
LOGGED_STEPS = {"loss_metrics/global_avg_loss": list(range(1, STEPS + 1)),
                "let/alignment_loss": list(range(1, STOP_STEP + 1))}
"""The compared scalars and the steps every run logs them at (alignment only up to stop_step)."""


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return save_llama(
        tmp_path_factory.mktemp("teacher") / "llama", ASSETS / "tokenizer", vocab_size=4096, hidden_size=128,
        intermediate_size=352, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
    )


def _aligned_run(folder: Path, teacher: Path, *args: str, ngpu: int = 1) -> str:
    """A STEPS-step run with `teacher` that aligns through STOP_STEP and then releases it; returns its log."""
    log = train_ok(
        folder, LET_DEBUG, "--let.teacher_path", str(teacher), "--model.hf_assets_path", str(teacher),
        "--training.steps", str(STEPS), "--let.stop_step", str(STOP_STEP), *TINY_BATCH, *SHORT_RUN, *args,
        ngpu=ngpu, env=ENV,
    )
    lines = let_lines(log)
    assert sorted(lines) == list(range(1, STOP_STEP + 1))
    assert [lines[s]["lambda"] for s in sorted(lines)] == pytest.approx([0.1, 0.1 * 2 / 3, 0.1 / 3], abs=1e-5)
    assert log.count("teacher released") == 1
    return log


def _assert_every_logged_loss_matches(run: Path, reference: Path, tolerance: float) -> None:
    """Both runs logged exactly LOGGED_STEPS, and agree there within `tolerance`."""
    for tag, steps in LOGGED_STEPS.items():
        assert sorted(tb_scalars(run, tag)) == sorted(tb_scalars(reference, tag)) == steps
        assert_same_scalars(reference, run, (tag,), steps, tolerance)


@pytest.fixture(scope="module")
def eager(teacher, tmp_path_factory) -> Path:
    """The reference: one rank, eager, no activation checkpointing."""
    folder = tmp_path_factory.mktemp("eager")
    _aligned_run(folder, teacher)
    return folder


def test_compile_student_blocks_alignment_loss_and_teacher(tmp_path, teacher, eager):
    log = _aligned_run(tmp_path, teacher, "--compile.enable")
    assert "Compiling each TransformerBlock with torch.compile" in log
    assert "[LET] Compiling the alignment loss with torch.compile" in log
    assert "compiled=True" in next(line for line in log.splitlines() if "[LET] teacher loaded" in line)
    _assert_every_logged_loss_matches(tmp_path, eager, tolerance=1e-4)


AC_MODES = {
    "full": ("--activation_checkpoint.mode", "full"),
    "selective per layer": ("--activation_checkpoint.mode", "selective"),
    "selective per op": (
        "--activation_checkpoint.mode", "selective", "--activation_checkpoint.selective_ac_option", "op",
    ),
}


@pytest.mark.parametrize("mode", AC_MODES)
def test_activation_checkpointing_reproduces_the_eager_losses(tmp_path, teacher, eager, mode):
    log = _aligned_run(tmp_path, teacher, *AC_MODES[mode])
    assert f"Applied {mode.split()[0]} activation checkpointing to the model" in log
    _assert_every_logged_loss_matches(tmp_path, eager, tolerance=1e-6)


def test_fsdp2_gradient_accumulation_equals_one_larger_batch(tmp_path, teacher):
    """2 ranks x 2 microbatches of 2 sequences per step: the same samples as 2 ranks x 1 batch of 4."""
    log = _aligned_run(tmp_path / "accumulated", teacher, "--training.global_batch_size", str(2 * 2 * 2), ngpu=2)
    assert "Applied FSDP to the model" in log
    assert "global batch size 8, gradient accumulation steps 2" in log
    _aligned_run(tmp_path / "one_batch", teacher, "--training.local_batch_size", "4",
                 "--training.global_batch_size", "8", ngpu=2)
    _assert_every_logged_loss_matches(tmp_path / "accumulated", tmp_path / "one_batch", tolerance=1e-5)
