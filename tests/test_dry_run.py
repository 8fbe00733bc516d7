"""Dry runs (let_components/dry_run.py and the stand-in teacher): every shipped config builds at its world size on
the fake backend, let_1.4b steps at 8 fake ranks through the teacher's release, and the job is adapted as the log
says, flags winning over the dry run's defaults."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from let_components import dry_run
from let_components.config import LETConfigError
from let_components.teacher import TeacherOptions, TeacherSource, teacher_architecture, teacher_source
from let_components.teacher.loader import build_meta_teacher
from let_components.teacher.shapes import TEACHER_CONFIGS, shipped_teacher
from let_components.teacher.stand_in import StandInTeacherSource
from let_components.tokens.byte_level import BYTE_LEVEL_IDS
from tests.support import REPO
from tests.support.config import parse_config
from tests.support.runs import run_train

WORLD_SIZES = {
    "let_1.4b": 8, "baseline_1.4b": 8, "rkd_1.4b": 8, "salt_1.4b": 8, "let_qwen3_1.7b": 8,
    "let_7b": 32, "baseline_7b": 32, "rkd_7b": 32, "salt_7b": 32,
    "let_debug": 2, "baseline_debug": 2, "rkd_debug": 2, "salt_debug": 2, "teacher_debug": 2, "let_bytes_debug": 2,
    "let_deepseek_v3_debug": 2, "let_qwen2_teacher_debug": 2, "let_qwen3_debug": 2, "let_qwen3_teacher_debug": 2,
    "replication_baseline": 2, "replication_let": 2, "replication_let_smollm2": 2, "replication_rkd": 2,
    "replication_salt": 2, "replication_teacher": 2,
}
"""Each shipped config's intended world size (its comments: 8 GPUs for 1.4B-2B, 4 nodes x 8 for 7B); debug configs
at 2, so FSDP shards them too."""
FAKE = ("--comm.mode", "fake_backend")


def test_every_shipped_config_has_its_world_size_here():
    assert set(WORLD_SIZES) == {path.stem for path in (REPO / "train_configs").glob("*.toml")}


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, dict]:
    """Every shipped config built on meta at its world size, in one process (tests/support/dry_build.py)."""
    specs = [f"train_configs/{name}.toml={world}" for name, world in sorted(WORLD_SIZES.items())]
    result = subprocess.run([sys.executable, "-m", "tests.support.dry_build", str(tmp_path_factory.mktemp("dry")),
                             *specs], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=600)
    lines = [json.loads(line.removeprefix("DRY_BUILD ")) for line in result.stdout.splitlines()
             if line.startswith("DRY_BUILD ")]
    assert len(lines) == len(specs), result.stdout[-4000:]
    return {Path(line["config"]).stem: line for line in lines}


@pytest.mark.parametrize("name", sorted(WORLD_SIZES))
def test_shipped_config_builds_at_its_world_size(builds, name):
    """Trainer.__init__ on the fake backend: the student sharded over the whole world (FSDP2, AC and compile
    applied), on meta; the teacher from its folder or, where the folder is not here, a stand-in of its shape."""
    built, world = builds[name], WORLD_SIZES[name]
    assert "error" not in built, built["error"]
    assert built["on_meta"] and built["sharded_over"] == [world]
    assert built["rank0_parameters"] * world == pytest.approx(built["parameters"], rel=0.02)
    if built["teacher_path"]:
        there = (REPO / built["teacher_path"] / "config.json").is_file()
        assert built["teacher"] == ("TeacherSource" if there else "StandInTeacherSource")


def test_let_7b_builds_its_paper_shape_at_32_ranks(builds):
    """The 7B student in Llama-3.2-1B's vocabulary: 4096 x 32 blocks, about 7.5B parameters, 1/32 of them on rank 0."""
    built = builds["let_7b"]
    assert built["teacher_vocab"] == 128256
    assert 7.4e9 < built["parameters"] < 7.6e9 and built["rank0_parameters"] < 0.24e9


MEMORY = re.compile(r"student weights ([\d.]+) GiB \(([\d.]+) GiB\), gradients ([\d.]+) GiB \(([\d.]+) GiB\), "
                    r"AdamW state ([\d.]+) GiB \(([\d.]+) GiB\), teacher ([\d.]+) (GiB|MiB) float32")


def test_let_1_4b_steps_at_8_fake_ranks_through_the_teachers_release(tmp_path):
    """COMM_MODE=fake_backend NGPU=8 ./run_train.sh on a machine without the teacher folder, the tokenizer or the
    data: SmolLM-135M's shape stands in, the sample corpus feeds it, step 1 teaches, step 2 is plain torchtitan, and
    rank 0's measured shards match the estimate's. Compile off and one sequence of 8 tokens per step: the test's time
(a step of the 1.4B student at full width is memory-bound on a CPU: about 30 s)."""
    missing = tmp_path / "hf" / "SmolLM-135M"  # as on a fresh clone, whatever this machine has downloaded
    result = run_train("--job.config_file", "train_configs/let_1.4b.toml", "--job.dump_folder", str(tmp_path),
                       "--let.teacher_path", str(missing),
                       "--compile.no-enable", "--metrics.log_freq", "1", "--validation.no-enable",
                       "--training.steps", "2", "--training.local_batch_size", "1", "--training.seq_len", "8",
                       ngpu=8, env={"COMM_MODE": "fake_backend"})
    log = result.stdout
    assert result.returncode == 0, log[-4000:]
    assert "SmolLM-135M's shape stands in (llama, 30 blocks x 576, vocabulary 49152)" in log
    assert "checkpoint.enable=true -> false" in log and "training.dataset='pile' -> 'sample_corpus'" in log
    assert "fake_backend with 8 ranks, this process rank 0; it cannot show" in log
    assert re.search(r"\[LET\] step:\s+1\s+lambda: 0.10000", log) and not re.search(r"\[LET\] step:\s+2", log)
    assert "teaching finished after step 1: teacher released" in log and re.search(r"step:\s+2\s.*loss", log)
    measured = MEMORY.search(log)
    assert measured, log[-4000:]
    for value, estimate in zip(measured.groups()[0:6:2], measured.groups()[1:6:2], strict=True):
        assert float(value) == pytest.approx(float(estimate), rel=0.02)  # rank 0's shards are 1/8 of the student
    assert "estimate for 8 GPUs, seq_len 2048, local batch 4" in log
    assert not (tmp_path / "let_teacher_config.json").exists()  # the real dump folder is left alone


def test_the_guard_the_caught_up_rule_and_the_record_run_under_the_fake_backend(tmp_path):
    """The package's own collectives (the non-finite guard's all-reduce, the caught-up rule's per-byte sums, the
    preemption flag) and files (let_run.json) at 2 fake ranks, validation included."""
    result = run_train("--job.config_file", "train_configs/let_debug.toml", "--job.dump_folder", str(tmp_path),
                       "--let.stop_when", "caught_up", "--let.caught_up_every", "1", "--let.caught_up_window", "1",
                       "--let.stop_step", "2", ngpu=2, env={"COMM_MODE": "fake_backend"})
    log = result.stdout
    assert result.returncode == 0, log[-4000:]
    assert [int(step) for step in re.findall(r"\[LET\] step:\s+(\d+)\s+caught-up check", log)] == [1, 2]
    assert "teaching finished after step 2: teacher released" in log and re.search(r"step:\s+4\s.*loss", log)
    assert re.search(r"validate step:\s+1\s", log)
    assert json.loads((tmp_path / "dry_run" / "let_run.json").read_text())["stop_step"] == 2


@pytest.fixture
def fake_world(monkeypatch):
    monkeypatch.setenv("NGPU", "32")
    monkeypatch.setattr(dry_run.torch.accelerator, "is_available", lambda: False)


def _dry(config: str, tmp_path: Path, *overrides: str):
    args = ["--job.dump_folder", str(tmp_path), *FAKE, *overrides]
    job_config = parse_config(config, *args)
    dry_run.adapt(job_config, args)
    return job_config


def test_a_dry_run_defaults_to_three_steps_with_the_teacher_leaving_after_one(tmp_path, fake_world):
    job_config = _dry("train_configs/let_7b.toml", tmp_path)
    training = job_config.training
    assert (training.steps, job_config.let.stop_step) == (3, 1)
    assert job_config.job.dump_folder == str(tmp_path / "dry_run") and not job_config.checkpoint.enable
    assert (training.dataset, training.dataset_path) == ("sample_corpus", None)
    assert job_config.validation.dataset == "sample_corpus_validation"
    # on a CPU: short windows, one micro-batch of 2 sequences on each of the 32 ranks
    assert (training.seq_len, job_config.validation.seq_len, training.global_batch_size) == (32, 32, 64)


def test_flags_win_over_the_dry_runs_defaults(tmp_path, fake_world):
    job_config = _dry("train_configs/let_7b.toml", tmp_path, "--training.steps", "5", "--let.stop_step=2",
                      "--training.seq_len", "64", "--training.global_batch_size", "128")
    training = job_config.training
    assert (training.steps, job_config.let.stop_step, training.seq_len, training.global_batch_size) == (5, 2, 64, 128)


def test_a_flag_spelled_with_hyphens_wins_too(tmp_path, fake_world):
    """torchtitan's parser takes --training.seq-len as --training.seq_len (its --help prints the hyphens)."""
    job_config = _dry("train_configs/let_7b.toml", tmp_path, "--training.steps", "5", "--let.stop-step=2",
                      "--training.seq-len", "64", "--training.global-batch-size", "128")
    training = job_config.training
    assert (training.steps, job_config.let.stop_step, training.seq_len, training.global_batch_size) == (5, 2, 64, 128)


def test_a_stop_step_flag_alone_keeps_a_step_after_the_teacher_leaves(tmp_path, fake_world):
    job_config = _dry("train_configs/let_7b.toml", tmp_path, "--let.stop_step", "4")
    assert (job_config.training.steps, job_config.let.stop_step) == (6, 4)


def test_a_global_batch_that_does_not_divide_over_the_world_is_one_line(tmp_path, fake_world):
    with pytest.raises(LETConfigError, match=r"training\.global_batch_size=500: must be a multiple of .* 2 x 32 = 64"):
        _dry("train_configs/let_7b.toml", tmp_path, "--training.global_batch_size", "500")


def test_a_pipeline_is_refused_in_one_line(tmp_path, fake_world):
    with pytest.raises(LETConfigError, match=r"parallelism\.pipeline_parallel_degree=2: a dry run cannot step a "
                                             r"pipeline .* python -m recipes\.probes\.memory --pp 2"):
        _dry("train_configs/let_7b.toml", tmp_path, "--parallelism.pipeline_parallel_degree", "2")


def test_without_a_fake_backend_nothing_changes(tmp_path):
    args = ["--job.dump_folder", str(tmp_path)]
    job_config = parse_config("train_configs/let_7b.toml", *args)
    dry_run.adapt(job_config, args)
    assert (job_config.training.steps, job_config.job.dump_folder) == (20000, str(tmp_path))
    assert type(teacher_source(job_config)) is TeacherSource  # a real run reads (and errs on) the folder itself


def test_the_stand_in_has_the_teachers_shape_random_weights_and_a_tokenizer_within_its_vocabulary(tmp_path):
    job_config = parse_config("train_configs/let_qwen3_teacher_debug.toml", "--job.dump_folder", str(tmp_path), *FAKE)
    source = teacher_source(job_config)
    assert isinstance(source, StandInTeacherSource) and source.config == TEACHER_CONFIGS["Qwen3-0.6B"]
    tokenizer = source.tokenizer()
    assert tokenizer.get_vocab_size() == BYTE_LEVEL_IDS <= source.text["vocab_size"]
    assert tokenizer.decode(tokenizer.encode("naïve café", add_bos=False, add_eos=False)) == "naïve café"
    source.keep(needed=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["let_dry_run_tokenizer"]  # no copy passes for the teacher


def test_the_stand_in_teacher_runs_forward(tmp_path):
    """Qwen2.5-0.5B's shape (q/k/v biases) cut to two blocks: the forward is what this test needs."""
    config = {**TEACHER_CONFIGS["Qwen2.5-0.5B"], "num_hidden_layers": 2}
    source = StandInTeacherSource("assets/hf/Qwen2.5-0.5B", tmp_path, shape_config=config)
    teacher = source.load("cpu", torch.float32, TeacherOptions(max_seq_len=16))
    hidden = teacher(torch.tensor([source.tokenizer().encode("a dry run", add_bos=True, add_eos=False)]))
    assert hidden.shape[-1] == 896 and torch.isfinite(hidden).all() and hidden.std() > 0
    assert not any(p.requires_grad for p in teacher.parameters())


def test_a_missing_folder_of_no_known_shape_is_one_line(tmp_path):
    job_config = parse_config("train_configs/let_debug.toml", "--job.dump_folder", str(tmp_path), *FAKE,
                              "--let.teacher_path", str(tmp_path / "my-teacher"))
    with pytest.raises(LETConfigError, match=r"let\.teacher_path='.*my-teacher': no config\.json there, and a dry run "
                                             r"knows the shape only of SmolLM-135M"):
        teacher_source(job_config)


def test_the_transformers_backend_without_the_teacher_folder_is_one_line(tmp_path):
    """The stand-in is built by the native module of its shape: a transformers teacher needs the model's files."""
    job_config = parse_config("train_configs/let_7b.toml", "--job.dump_folder", str(tmp_path), *FAKE,
                              "--let.teacher_backend", "transformers")
    with pytest.raises(LETConfigError, match=r"let\.teacher_backend='transformers': a dry run without the teacher "
                                             r"folder builds Llama-3.2-1B's shape .* use teacher_backend = 'auto'"):
        teacher_source(job_config)


PUBLISHED_PARAMETERS = {"SmolLM-135M": 134_515_008, "SmolLM2-135M-Instruct-Q4_1": 134_515_008,
                        "Llama-3.2-1B": 1_235_814_400, "Qwen3-0.6B": 596_049_920, "Qwen2.5-0.5B": 494_032_768}
"""The parameter counts the published models have (their model cards and transformers' count)."""


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_the_shapes_table_builds_the_published_models(name):
    config = TEACHER_CONFIGS[name]
    model = build_meta_teacher(config, teacher_architecture(config), TeacherOptions())
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMETERS[name]


def test_the_shapes_table_is_found_by_the_configs_paths():
    assert shipped_teacher("./assets/hf/Llama-3.2-1B")[0] == "Llama-3.2-1B"
    assert shipped_teacher("./outputs/replication/teacher")[0] == "replication/teacher"
    assert shipped_teacher("./outputs/teacher") is None and shipped_teacher("elsewhere/Qwen3-0.6B-x") is None


def test_run_train_sh_refuses_a_comm_mode_that_is_no_dry_run():
    result = run_train("--training.steps", "1", env={"COMM_MODE": "nccl"}, timeout=60)
    assert result.returncode == 2 and "COMM_MODE=nccl: fake_backend or local_tensor" in result.stdout
