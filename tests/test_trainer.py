"""End-to-end runs through ./run_train.sh on CPU ranks, checked through their logs and TensorBoard events."""

import re
import shutil
import signal
from pathlib import Path

import pytest
from torchtitan.protocols.train_spec import get_train_spec

from recipes.reports.run_logs import read_run_record
from tests.support import ASSETS
from tests.support.config import parse_config
from tests.support.logs import assert_same_scalars, distillation_lines, let_lines, tb_scalars
from tests.support.runs import SHORT_RUN, TINY_BATCH, run_train, signal_tree, start_train, train_ok, wait_for
from tests.support.teachers import broken_teacher, save_llama, save_qwen, save_tiny_teacher
from tests.support.tokenizers import save_qwen_tokenizer, save_wordlevel_tokenizer

LET_DEBUG = "train_configs/let_debug.toml"
SALT_DEBUG = "train_configs/salt_debug.toml"
RKD_DEBUG = "train_configs/rkd_debug.toml"
QWEN3_DEBUG = "train_configs/let_qwen3_debug.toml"
MOE_DEBUG = "train_configs/let_deepseek_v3_debug.toml"
BASELINE_DEBUG = "train_configs/baseline_debug.toml"


def _losses(folder: Path) -> dict[int, float]:
    return tb_scalars(folder, "loss_metrics/global_avg_loss")


@pytest.mark.parametrize("ngpu, projection", [(1, "interpolate"), (2, "linear")])
def test_alignment_runs_stop_steps_then_teacher_is_released(tmp_path, ngpu, projection):
    # 2 ranks: FSDP2 over gloo, with the learned projection, which gets no gradient after stop_step
    args = ("--training.steps", "8", "--let.stop_step", "4", "--let.projection", projection)
    log = train_ok(tmp_path, LET_DEBUG, *SHORT_RUN, *args, ngpu=ngpu)
    lines = let_lines(log)
    assert sorted(lines) == [1, 2, 3, 4]
    for step, line in lines.items():
        assert line["lambda"] == pytest.approx(0.1 * (4 - (step - 1)) / 4, abs=1e-5)
        assert -1.0 <= line["cosine"] <= 1.0
        assert line["alignment_loss"] == pytest.approx(-line["cosine"], abs=1e-4)
    assert log.count("teacher released") == 1
    lambdas = tb_scalars(tmp_path, "let/lambda")
    assert [lambdas[s] for s in range(5, 9)] == [0.0] * 4
    assert sorted(_losses(tmp_path)) == list(range(1, 9))
    record = read_run_record(tmp_path)
    assert (record["stop_step"], record["projection"], record["training_steps"]) == (4, projection, 8)
    assert record["student_init"] == "torchtitan"
    if ngpu == 2:
        assert "Applied FSDP to the model" in log


def test_disabled_let_matches_stock_torchtitan_trainer(tmp_path):
    """With enable = false the loss sequence equals torchtitan's own Trainer (same platform module, same seed)."""
    stock_module = tmp_path / "stock_train.py"
    stock_module.write_text(
        "import let_components  # noqa: F401\n"
        "from let_components import platform\n"
        "from torchtitan.train import Trainer\n"
        "platform.main(Trainer)\n"
    )
    steps = ("--training.steps", "6", *TINY_BATCH)
    log = train_ok(tmp_path / "let", BASELINE_DEBUG, *SHORT_RUN, *steps)
    train_ok(tmp_path / "stock", BASELINE_DEBUG, *SHORT_RUN, *steps,
             env={"TRAIN_FILE": "stock_train", "PYTHONPATH": str(tmp_path)})
    assert "[LET]" not in log
    ours, stock = _losses(tmp_path / "let"), _losses(tmp_path / "stock")
    assert sorted(ours) == list(range(1, 7))
    assert ours.keys() == stock.keys()
    for step in ours:
        assert abs(ours[step] - stock[step]) <= 1e-6, (step, ours[step], stock[step])


# 8 steps aligning through step 6, a checkpoint every 2 steps: saves at 2, 4 and 6 fall mid-alignment. Validation
# at steps 1, 2, 4, 6, 8, each reading on where the last stopped in the re-looped stream (torchtitan's Validator)
RESUMABLE = ("--training.steps", "8", "--let.stop_step", "6", "--checkpoint.enable", "--checkpoint.interval", "2",
             "--training.seq_len", "64", "--training.local_batch_size", "4", "--validation.enable",
             "--validation.freq", "2", "--validation.steps", "2", "--validation.local_batch_size", "2",
             "--validation.seq_len", "64")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The reference run, with the 7B config's async checkpointing (its saves land mid-alignment)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    train_ok(folder, LET_DEBUG, *SHORT_RUN, *RESUMABLE, "--checkpoint.async_mode", "async")
    return folder


def _assert_same_losses_as_uninterrupted(uninterrupted: Path, run: Path, steps: list[int]) -> None:
    """Training losses at `steps`, alignment losses at those of them that align (RESUMABLE's stop_step 6) and
    validation losses at those that evaluate: a resumed run evaluates the same text at the same step
    (let_components/validate.py)."""
    assert_same_scalars(uninterrupted, run, ("loss_metrics/global_avg_loss",), steps)
    assert_same_scalars(uninterrupted, run, ("let/alignment_loss",), [s for s in steps if s <= 6])
    assert_same_scalars(uninterrupted, run, ("validation_metrics/loss",), [s for s in steps if s in (1, 2, 4, 6, 8)])


def test_resume_mid_alignment_from_an_async_checkpoint_reproduces_the_uninterrupted_run(tmp_path, uninterrupted):
    resumed = tmp_path / "resumed"
    shutil.copytree(uninterrupted / "checkpoint" / "step-4", resumed / "checkpoint" / "step-4")
    log = train_ok(resumed, LET_DEBUG, *SHORT_RUN, *RESUMABLE)
    assert "Training starts at step 5" in log
    assert "[validation] resumed at step 6: skipped the data of the 3 earlier evaluations" in log
    assert sorted(let_lines(log)) == [5, 6]
    assert sorted(_losses(resumed)) == [5, 6, 7, 8]
    _assert_same_losses_as_uninterrupted(uninterrupted, resumed, [5, 6, 7, 8])


# Hangs once inside the step-4 save, after the data files and before DCP's .metadata, so the test can kill the
# run at a known point of a checkpoint save.
HANG_IN_SAVE_ENTRY = '''
import os
import time

from torch.distributed.checkpoint.filesystem import FileSystemWriter

from recipes.train import main

finish = FileSystemWriter.finish


def hang_once_in_step_4(self, metadata, results):
    marker = os.environ["HANG_MARKER"]
    if str(self.path).endswith("step-4") and not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(600)
    return finish(self, metadata, results)


FileSystemWriter.finish = hang_once_in_step_4
main()
'''


def test_preempted_run_resumes_with_the_same_command_and_matches_the_uninterrupted_run(tmp_path, uninterrupted):
    """SIGKILL inside a checkpoint save, then SIGTERM mid-alignment, each followed by the same command again."""
    (tmp_path / "hang_in_save.py").write_text(HANG_IN_SAVE_ENTRY)
    marker, run = tmp_path / "inside_save", tmp_path / "run"
    env = {"TRAIN_FILE": "hang_in_save", "PYTHONPATH": str(tmp_path), "HANG_MARKER": str(marker)}
    command = ("--job.config_file", LET_DEBUG, "--job.dump_folder", str(run), *SHORT_RUN, *RESUMABLE)

    killed = start_train(tmp_path / "killed.log", *command, env=env)
    wait_for(marker.exists, killed)
    step_4 = run / "checkpoint" / "step-4"
    assert any(step_4.glob("*.distcp")) and not (step_4 / ".metadata").exists()  # a partial checkpoint
    assert len(signal_tree(killed.pid, signal.SIGKILL)) >= 2  # torchrun and its worker
    killed.wait(timeout=60)

    log = tmp_path / "terminated.log"
    terminated = start_train(log, *command, env=env)
    wait_for(lambda: "step:  5" in log.read_text(), terminated)
    signal_tree(terminated.pid, signal.SIGTERM)
    terminated.wait(timeout=120)
    text = log.read_text()
    assert "Training starts at step 3" in text  # step-4 was incomplete: back to step 2, as torchtitan decides
    saved = re.search(r"SIGTERM: (?:saved step|step) (\d+)", text)
    assert saved and "Training completed" in text, text[-3000:]
    last = int(saved[1])
    assert (run / "checkpoint" / f"step-{last}" / ".metadata").is_file()

    log = train_ok(run, LET_DEBUG, *SHORT_RUN, *RESUMABLE, env=env)
    assert f"Training starts at step {last + 1}" in log
    _assert_same_losses_as_uninterrupted(uninterrupted, run, list(range(1, 9)))


def test_resume_after_stop_step_needs_no_teacher(tmp_path):
    args = ("--training.steps", "4", "--let.stop_step", "2", "--checkpoint.enable", "--checkpoint.interval", "3")
    teacher = tmp_path / "teacher"
    shutil.copytree(ASSETS / "teacher_debug", teacher)
    train_ok(tmp_path / "run", LET_DEBUG, *SHORT_RUN, "--let.teacher_path", str(teacher), *args)
    shutil.rmtree(teacher)
    shutil.rmtree(tmp_path / "run" / "checkpoint" / "step-4")
    log = train_ok(tmp_path / "run", LET_DEBUG, *SHORT_RUN, "--let.teacher_path", str(teacher), *args)
    assert "Training starts at step 4" in log
    assert "teacher loaded" not in log


def _small_vocab_teacher(tmp_path: Path) -> Path:
    return save_llama(tmp_path / "small_vocab", ASSETS / "teacher_debug", vocab_size=256)


# Each refused before torchtitan builds anything (check_before_start), so checked in-process; the two end-to-end
# cases below show the launcher turning such an error into one line and a non-zero exit.
REFUSED_BEFORE_START = {
    "student layer out of range": (("--let.student_layer", "6"), "let.student_layer=6"),
    "teacher layer out of range": (("--let.teacher_layer", "4"), "let.teacher_layer=4"),
    "stop step beyond training": (("--training.steps", "10", "--let.stop_step", "11"), "let.stop_step=11"),
    "unsupported parallelism": (("--parallelism.context_parallel_degree", "2"),
                                "parallelism.context_parallel_degree=2"),
    "sequence beyond learned positions": (
        ("--let.teacher_path", "{opt}", "--model.hf_assets_path", "{opt}", "--training.seq_len", "1024"),
        "training.seq_len=1024",
    ),
    # the teacher is built with the student's attention kernel: GPT-NeoX/OPT teachers have none for varlen
    "student kernel the teacher lacks": (
        ("--let.teacher_path", "{opt}", "--model.hf_assets_path", "{opt}", "--training.seq_len", "64"),
        "the student's attn_type='varlen' has no kernel in this teacher architecture",
    ),
    "teacher window beyond learned positions": (
        ("--let.teacher_path", "{opt}", "--let.token_alignment", "bytes", "--let.teacher_seq_len", "600",
         "--training.seq_len", "64"),
        "let.teacher_seq_len=600",
    ),
    "tokenizer that is not byte-level, aligned by bytes": (
        ("--let.token_alignment", "bytes", "--model.hf_assets_path", "{wordlevel}"),
        "model.hf_assets_path='",
    ),
    # the caught-up rule compares losses per byte: with the same tokenizer too, it needs every token's bytes
    "caught-up stop rule with a tokenizer that does not say its bytes": (
        ("--let.stop_when", "caught_up", "--model.hf_assets_path", "{wordlevel}"),
        "which let.stop_when='caught_up' (it compares both models' loss per byte of text; or stop_when='step') needs",
    ),
}


@pytest.mark.parametrize("case", REFUSED_BEFORE_START)
def test_bad_input_is_refused_before_anything_is_built(tmp_path, monkeypatch, case):
    from let_components.config import LETConfigError
    from let_components.prestart import check_before_start

    args, expected = REFUSED_BEFORE_START[case]
    if "{opt}" in args:  # learned positions stop at max_position_embeddings = 512
        args = tuple(a.format(opt=save_tiny_teacher(tmp_path / "opt", "opt")) for a in args)
    if "{wordlevel}" in args:
        args = tuple(a.format(wordlevel=save_wordlevel_tokenizer(tmp_path / "wordlevel")) for a in args)
    if "varlen" in expected:
        flavor = get_train_spec("let_llama").model_args["debugmodel"]
        monkeypatch.setattr(flavor, "attn_type", "varlen")
        monkeypatch.setattr(flavor, "attn_mask_type", "block_causal")
    monkeypatch.chdir(ASSETS.parent)  # the config's teacher and tokenizer paths are relative to the repository
    job_config = parse_config(LET_DEBUG, "--job.dump_folder", str(tmp_path / "out"), *args)
    with pytest.raises(LETConfigError, match=re.escape(expected)) as error:
        check_before_start(job_config)
    assert "\n" not in str(error.value)


BAD_INPUTS = {
    "teacher missing": (("--let.teacher_path", "/nonexistent/teacher"), "let.teacher_path='/nonexistent/teacher'"),
    # found after torchtitan built the tokenizer: the student's vocabulary would not cover it
    "vocab mismatch": (("--let.teacher_path", "{small_vocab}"), "tokenizer has 4096 ids"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_exits_nonzero_with_one_line_error(tmp_path, case):
    args, expected = BAD_INPUTS[case]
    if "{small_vocab}" in args:
        args = tuple(a.format(small_vocab=_small_vocab_teacher(tmp_path)) for a in args)
    result = run_train("--job.config_file", LET_DEBUG, "--job.dump_folder", str(tmp_path / "out"), *args)
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if "[LET] configuration error:" in line]
    assert len(errors) == 1, result.stdout[-3000:]
    assert expected in errors[0]
    assert "step:" not in result.stdout  # failed before training


@pytest.mark.parametrize("model_type", ["llama", "gpt_neox", "opt"])
def test_each_teacher_architecture_swaps_in_from_the_command_line(tmp_path, model_type):
    teacher = save_tiny_teacher(tmp_path / model_type, model_type, gpt2_style_tokenizer=model_type != "llama")
    # one key: the student's tokenizer follows let.teacher_path (model.hf_assets_path is not set)
    log = train_ok(tmp_path / "run", LET_DEBUG, *SHORT_RUN, "--training.steps", "3", "--let.stop_step", "2",
                   "--let.teacher_path", str(teacher))
    assert sorted(let_lines(log)) == [1, 2]
    assert "teacher sanity check: LM loss" in log
    assert "teacher released" in log


def test_launcher_defaults_to_the_let_debug_config(tmp_path):
    result = run_train("--training.steps", "2", "--let.stop_step", "1", "--validation.no-enable",
                       "--job.dump_folder", str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Starting job: LET debug run" in result.stdout
    assert sorted(let_lines(result.stdout)) == [1]


@pytest.mark.parametrize("kind", ["nan weight", "shape mismatch"])
def test_broken_teacher_folder_ends_the_run_with_one_line_and_no_checkpoint(tmp_path, kind):
    """NaN weights are found when the teacher loads (step 1), a shape mismatch before start: both stop the run
    before a checkpoint is written (first-step checkpoint on)."""
    teacher = broken_teacher(tmp_path / "teacher", kind)
    out = tmp_path / "out"
    result = run_train(
        "--job.config_file", LET_DEBUG, "--job.dump_folder", str(out), "--let.teacher_path", str(teacher),
        "--training.steps", "2", "--let.stop_step", "1", "--validation.no-enable", "--training.seq_len", "64",
        "--checkpoint.enable", "--checkpoint.enable_first_step_checkpoint",
    )
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if "[LET] configuration error:" in line]
    assert len(errors) == 1, result.stdout[-3000:]
    assert f"let.teacher_path='{teacher}': model.safetensors tensor 'model." in errors[0]
    assert "step:" not in result.stdout
    assert not (out / "checkpoint").exists() or not any((out / "checkpoint").iterdir())


# ---- other students and teachers: the same trainer through the block-k hook ----------------------------------


def _assert_aligned_then_released(log: str, stop_step: int) -> None:
    lines = let_lines(log)
    assert sorted(lines) == list(range(1, stop_step + 1))
    for step, line in lines.items():
        assert line["lambda"] == pytest.approx(0.1 * (stop_step - (step - 1)) / stop_step, abs=1e-5)
        assert line["alignment_loss"] == pytest.approx(-line["cosine"], abs=1e-4)
    assert log.count("teacher released") == 1


def test_qwen3_student_on_two_ranks_full_ac_compiled_resumes_mid_alignment(tmp_path):
    """qwen3 dense student + the project's llama teacher; FSDP2 on 2 ranks, full AC, per-block compile (aot_eager).
    Resumed from step 3 of 6 (stop_step 4), it reproduces the uninterrupted run's losses."""
    args = (*TINY_BATCH, "--training.steps", "6", "--let.stop_step", "4", "--checkpoint.enable",
            "--checkpoint.interval", "3", "--activation_checkpoint.mode", "full", "--compile.enable",
            "--compile.backend", "aot_eager")
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    log = train_ok(full, QWEN3_DEBUG, *SHORT_RUN, *args, ngpu=2)
    for line in ("Applied FSDP to the model", "Applied full activation checkpointing to the model",
                 "Compiling each TransformerBlock with torch.compile"):
        assert line in log
    _assert_aligned_then_released(log, stop_step=4)
    shutil.copytree(full / "checkpoint" / "step-3", resumed / "checkpoint" / "step-3")
    log = train_ok(resumed, QWEN3_DEBUG, *SHORT_RUN, *args, ngpu=2)
    assert "Training starts at step 4" in log
    assert sorted(let_lines(log)) == [4] and log.count("teacher released") == 1
    for tag, steps in (("loss_metrics/global_avg_loss", [4, 5, 6]), ("let/alignment_loss", [4])):
        assert sorted(tb_scalars(resumed, tag)) == steps
        assert_same_scalars(full, resumed, (tag,), steps)


def test_moe_student_aligns_to_a_dense_teacher(tmp_path):
    """deepseek_v3 MoE student (for-loop experts on CPU, expert-bias load balancing on) + the llama teacher, full AC."""
    log = train_ok(tmp_path, MOE_DEBUG, *SHORT_RUN, *TINY_BATCH, "--training.steps", "3", "--let.stop_step", "2",
                   "--activation_checkpoint.mode", "full")
    assert "Applied full activation checkpointing to the model" in log
    _assert_aligned_then_released(log, stop_step=2)
    assert sorted(_losses(tmp_path)) == [1, 2, 3]


def test_llama_student_learns_from_a_qwen3_teacher_given_only_its_folder(tmp_path):
    """A tiny Qwen3 teacher (q/k norm, explicit head_dim, tied) with a Qwen-style 512-token tokenizer: one key swaps
    it in, the student trains in its vocabulary."""
    import dataclasses

    import torch

    from let_components.student import Student, student_args

    teacher = save_qwen(tmp_path / "qwen3", "qwen3", vocab_size=512, num_hidden_layers=2, head_dim=32,
                        tie_word_embeddings=True)
    save_qwen_tokenizer(teacher, vocab_size=512)
    log = train_ok(tmp_path / "run", LET_DEBUG, *SHORT_RUN, *TINY_BATCH, "--training.steps", "3",
                   "--let.stop_step", "2", "--let.teacher_path", str(teacher))
    _assert_aligned_then_released(log, stop_step=2)
    assert "teacher sanity check: LM loss" in log
    with torch.device("meta"):
        student = Student(dataclasses.replace(student_args["debugmodel"], vocab_size=512))
    assert f"{sum(p.numel() for p in student.parameters()):,} total parameters" in log


# ---- signal = "logits": SALT and RKD through the same trainer ------------------------------------------------


def test_salt_preset_distils_for_the_early_phase_then_releases_the_teacher(tmp_path):
    log = train_ok(tmp_path, SALT_DEBUG, *SHORT_RUN, *TINY_BATCH, "--training.steps", "4", "--let.stop_step", "2")
    lines = distillation_lines(log)
    assert sorted(lines) == [1, 2] and let_lines(log) == {}  # the hidden-signal line is not printed
    for line in lines.values():
        assert line["lambda"] == 0.5  # SALT's constant weight: a step transition after stop_step
        assert line["distillation_loss"] > 0 and 0.0 <= line["top1_agreement"] <= 1.0
    assert "teacher sanity check: LM loss" in log
    assert log.count("teacher released") == 1
    for tag, key in (("let/distillation_loss", "distillation_loss"), ("let/top1_agreement", "top1_agreement")):
        scalars = tb_scalars(tmp_path, tag)
        assert sorted(scalars) == [1, 2]
        assert all(scalars[s] == pytest.approx(lines[s][key], abs=1e-4) for s in (1, 2))
    assert tb_scalars(tmp_path, "let/lambda")[3] == 0.0
    assert sorted(_losses(tmp_path)) == [1, 2, 3, 4]
    assert read_run_record(tmp_path)["signal"] == "logits"


def test_rkd_preset_on_two_ranks_resumes_mid_phase_with_the_same_losses(tmp_path):
    """rkd_debug (the teacher for the whole run) with FSDP2 on 2 ranks, reverse KL at T = 2: resumed from the step-2
    checkpoint, step 3 reproduces the uninterrupted run's CE, distillation loss and top-1 agreement."""
    args = (*TINY_BATCH, "--training.steps", "3", "--let.stop_step", "3", "--let.kd_direction", "reverse",
            "--let.kd_temperature", "2.0", "--checkpoint.enable", "--checkpoint.interval", "2")
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    log = train_ok(full, RKD_DEBUG, *SHORT_RUN, *args, ngpu=2)
    assert "Applied FSDP to the model" in log and "reverse KL at T=2.0" in log
    assert sorted(distillation_lines(log)) == [1, 2, 3] and "teacher released" not in log
    shutil.copytree(full / "checkpoint" / "step-2", resumed / "checkpoint" / "step-2")
    log = train_ok(resumed, RKD_DEBUG, *SHORT_RUN, *args, ngpu=2)
    assert "Training starts at step 3" in log and sorted(distillation_lines(log)) == [3]
    tags = ("loss_metrics/global_avg_loss", "let/distillation_loss", "let/top1_agreement")
    for tag in tags:
        assert sorted(tb_scalars(resumed, tag)) == [3], tag
    assert_same_scalars(full, resumed, tags, [3])
