"""The shipped TOML configs and the `[let]` section's checks."""

import tomllib
from pathlib import Path

import pytest
from torchtitan.protocols.train_spec import get_train_spec

import let_components  # noqa: F401  (registers the student specs)
from let_components.config import LET, LETConfigError, latest_checkpoint_step, valid_choices
from let_components.prestart import check_let_config, exclude_projection_from_quantization
from let_components.schedule import SCHEDULES
from tests.support.config import parse_config

CONFIGS = Path(__file__).resolve().parent.parent / "train_configs"
DEBUG_STUDENT = get_train_spec("let_llama").model_args["debugmodel"]
PAIRS = [("let_debug", "baseline_debug"), ("let_1.4b", "baseline_1.4b"), ("let_7b", "baseline_7b")]


def _parse(name: str, *args: str):
    return parse_config(f"train_configs/{name}.toml", *args)


@pytest.mark.parametrize("let_name, baseline_name", PAIRS)
def test_baseline_differs_from_its_let_config_only_by_enable_and_dump_folder(let_name, baseline_name):
    let, baseline = (tomllib.loads((CONFIGS / f"{n}.toml").read_text()) for n in (let_name, baseline_name))
    assert let["let"].pop("enable") is True and baseline["let"].pop("enable") is False
    for config in (let, baseline):
        config["job"].pop("dump_folder")
        config["job"].pop("description")
    assert let == baseline


PRESETS = [(kind, size) for kind in ("salt", "rkd") for size in ("debug", "1.4b", "7b")] + [
    ("replication_salt", None), ("replication_rkd", None)]


@pytest.mark.parametrize("kind, size", PRESETS)
def test_salt_and_rkd_presets_differ_from_their_let_config_only_in_let_and_job_name(kind, size):
    name, let_name = (f"{kind}_{size}", f"let_{size}") if size else (kind, "replication_let")
    preset, let = (tomllib.loads((CONFIGS / f"{n}.toml").read_text()) for n in (name, let_name))
    assert preset["let"]["teacher_path"] == let["let"]["teacher_path"]
    assert preset["let"]["signal"] == "logits" and preset["let"]["kd_combine"] == "mix"
    for config in (preset, let):
        config.pop("let")
        config["job"].pop("dump_folder")
        config["job"].pop("description")
    assert preset == let
    job_config = _parse(name)
    check_let_config(job_config, get_train_spec(job_config.model.name).model_args[job_config.model.flavor])
    if "rkd" in kind:  # the whole run, one constant weight
        assert job_config.let.stop_step == job_config.training.steps and job_config.let.schedule == "constant"
    else:  # SALT: an early phase as long as LET's, then plain training
        assert job_config.let.stop_step == _parse(let_name).let.stop_step < job_config.training.steps


def test_the_bytes_preset_differs_from_let_debug_only_in_tokenizers_and_teacher():
    bytes_preset, let = (tomllib.loads((CONFIGS / f"{n}.toml").read_text()) for n in ("let_bytes_debug", "let_debug"))
    assert bytes_preset["model"].pop("hf_assets_path") == "./assets/tokenizer"
    assert bytes_preset["let"].pop("token_alignment") == "bytes"
    assert bytes_preset["let"].pop("teacher_seq_len") == bytes_preset["training"]["seq_len"]
    assert "SmolLM2-135M" in bytes_preset["let"].pop("teacher_path") and let["let"].pop("teacher_path")
    for config in (bytes_preset, let):
        config["job"].pop("dump_folder")
        config["job"].pop("description")
    assert bytes_preset == let


LET_CONFIGS = ["let_debug", "let_1.4b", "let_7b", "let_qwen3_debug", "let_deepseek_v3_debug", "let_qwen3_1.7b",
               "let_qwen3_teacher_debug", "let_qwen2_teacher_debug"]


@pytest.mark.parametrize("name", LET_CONFIGS)
def test_let_configs_state_layer_and_stop_step_and_pass_the_checks(name):
    raw = tomllib.loads((CONFIGS / f"{name}.toml").read_text())
    assert {"student_layer", "stop_step"} <= raw["let"].keys()
    # swapping a teacher is one key: the tokenizer follows let.teacher_path
    assert "hf_assets_path" not in raw["model"]
    job_config = _parse(name)
    flavor = get_train_spec(job_config.model.name).model_args[job_config.model.flavor]
    check_let_config(job_config, flavor)
    # an EARLY block (L2E) and about 20% of training
    assert job_config.let.student_layer < flavor.n_layers // 2
    assert job_config.let.stop_step == job_config.training.steps // 5


@pytest.mark.parametrize(
    "args, message",
    [
        (("--let.lambda_0", "-1"), "let.lambda_0=-1"),
        (("--let.stop_step", "0"), "let.stop_step=0"),
        (("--let.student_layer", "-1"), "let.student_layer=-1"),
        (("--parallelism.pipeline_parallel_degree", "2", "--parallelism.pipeline_parallel_schedule",
          "InterleavedZeroBubble"), "parallelism.pipeline_parallel_schedule='InterleavedZeroBubble': LET under"),
        (("--parallelism.pipeline_parallel_degree", "2", "--parallelism.pipeline_parallel_schedule", "DualPipeV"),
         r"takes GPipe, 1F1B, Interleaved1F1B \(zero-bubble and DualPipeV split the backward"),
        (("--parallelism.pipeline_parallel_degree", "2", "--let.stop_when", "caught_up"),
         "parallelism.pipeline_parallel_degree=2: stop_when='caught_up' compares"),
        (("--parallelism.context_parallel_degree", "2"),
         r"parallelism.context_parallel_degree=2: not supported with LET \(the teacher must read each whole"),
        (("--parallelism.tensor_parallel_degree", "3"),
         r"parallelism.tensor_parallel_degree=3: the student \(let_llama debugmodel\) has n_heads=8, which TP must"),
        (("--let.signal", "logits", "--parallelism.tensor_parallel_degree", "2"),
         "parallelism.tensor_parallel_degree=2: signal='logits' needs .* add --parallelism.disable_loss_parallel"),
        (("--parallelism.expert_parallel_degree", "2"), "parallelism.expert_parallel_degree=2: expert parallelism"),
        (("--let.teacher_path", ""), "let.teacher_path is empty"),
        (("--let.teacher_compile_mode", "reduce-overhead"), "let.teacher_compile_mode='reduce-overhead': needs a"),
        (("--let.signal", "logits", "--let.kd_temperature", "0"), "let.kd_temperature=0.0: must be > 0"),
        (("--let.signal", "logits", "--let.kd_temperature", "-2"), "let.kd_temperature=-2.0: must be > 0"),
        (("--let.signal", "logits", "--let.teacher_layer", "2"), "let.teacher_layer=2: signal='logits'"),
        (("--let.signal", "logits", "--let.token_alignment", "bytes"), "let.token_alignment='bytes': signal='logits'"),
        (("--let.signal", "logits", "--let.projection", "linear"), "let.projection='linear': a learned"),
        (("--let.signal", "logits", "--let.kd_combine", "mix", "--let.lambda_0", "1.5"), "let.lambda_0=1.5: with"),
        (("--let.signal", "logits", "--let.kd_chunk_tokens", "0"), "let.kd_chunk_tokens=0: must be >= 1"),
        (("--let.teacher_seq_len", "-1"), "let.teacher_seq_len=-1: must be >= 0"),
        (("--let.token_alignment", "bytes", "--training.dataloader.num_workers", "2"),
         "training.dataloader.num_workers=2: token_alignment='bytes' takes 0 or 1"),
    ],
)
def test_bad_values_raise_one_line_errors_naming_the_key(args, message):
    with pytest.raises(LETConfigError, match=message) as error:
        check_let_config(_parse("let_debug", *args), DEBUG_STUDENT)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("key, value", [("schedule", "step"), ("projection", "mlp"), ("teacher_dtype", "float16"),
                                        ("kd_direction", "jensen"), ("kd_combine", "max")])
def test_choices_come_from_the_literal_annotations(key, value):
    assert valid_choices(LET, "schedule") == SCHEDULES == ("linear", "constant", "cosine")
    job_config = _parse("salt_debug")
    setattr(job_config.let, key, value)
    with pytest.raises(LETConfigError, match=f"let.{key}='{value}': valid are {', '.join(valid_choices(LET, key))}$"):
        check_let_config(job_config, DEBUG_STUDENT)


@pytest.mark.parametrize("key, value, valid", [("signal", "attention", "hidden, logits"),
                                               ("token_alignment", "chars", "same, bytes"),
                                               ("stop_when", "never", "step, caught_up")])
def test_choices_with_a_registry_come_from_it(key, value, valid):
    """signal, token_alignment and stop_when name what their packages registered, in registration order."""
    assert (LET().signal, LET().token_alignment, LET().stop_when) == ("hidden", "same", "step")  # LET's defaults
    job_config = _parse("let_debug")
    setattr(job_config.let, key, value)
    with pytest.raises(LETConfigError, match=f"let.{key}='{value}': valid are {valid}$"):
        check_let_config(job_config, DEBUG_STUDENT)


def test_resume_step_is_the_latest_complete_checkpoint_as_torchtitan_decides(tmp_path):
    """A save killed half-way leaves step-N without DCP's .metadata: torchtitan skips it, and so must LET."""
    from torchtitan.components.checkpoint import CheckpointManager

    job_config = _parse("let_debug", "--job.dump_folder", str(tmp_path), "--checkpoint.enable")
    assert latest_checkpoint_step(job_config) == 0
    folder = tmp_path / "checkpoint"
    for step in (4, 12, 8):
        (folder / f"step-{step}").mkdir(parents=True)
        (folder / f"step-{step}" / ".metadata").touch()
    (folder / "step-16").mkdir()
    (folder / "step-16" / "__0_0.distcp").touch()  # data written, .metadata not yet
    assert latest_checkpoint_step(job_config) == 12
    assert CheckpointManager._find_load_step(None, str(folder)) == 12  # torchtitan's own choice


@pytest.mark.parametrize("load_step, resumes_after", [(-1, 12), (0, 0), (8, 8)])
def test_resume_step_follows_checkpoint_load_step_as_torchtitan_loads_it(tmp_path, load_step, resumes_after):
    """load_step = 0 loads the step-0 (seed) checkpoint, weights only, and trains from step 1: nothing is resumed,
    so the checks of a fresh run (teacher folder, tokenizer, fingerprint) must all run."""
    folder = tmp_path / "checkpoint"
    for step in (0, 8, 12):
        (folder / f"step-{step}").mkdir(parents=True)
        (folder / f"step-{step}" / ".metadata").touch()
    job_config = _parse("let_debug", "--job.dump_folder", str(tmp_path), "--checkpoint.enable",
                        "--checkpoint.load_step", str(load_step))
    assert latest_checkpoint_step(job_config) == resumes_after


def test_no_checkpoint_folder_means_a_fresh_run_even_with_an_initial_load_path(tmp_path):
    """torchtitan loads checkpoint.initial_load_path as weights only when the job has no checkpoint folder yet."""
    (tmp_path / "seed" / "step-40").mkdir(parents=True)
    job_config = _parse("let_debug", "--job.dump_folder", str(tmp_path / "job"), "--checkpoint.enable",
                        "--checkpoint.initial_load_path", str(tmp_path / "seed" / "step-40"))
    assert latest_checkpoint_step(job_config) == 0


def test_the_learned_projection_is_kept_out_of_float8_and_mx():
    """torchtitan's two linear converters read their own filter lists: the projection must be in both, once, with
    what the user listed kept (MX's default keeps `output` in high precision)."""
    job_config = _parse("let_debug", "--quantize.linear.float8.filter_fqns", "output")
    exclude_projection_from_quantization(job_config)
    exclude_projection_from_quantization(job_config)  # idempotent: the trainer may run it on every start
    linear = job_config.quantize.linear
    assert linear.float8.filter_fqns == ["output", "let_projection"]
    assert linear.mx.filter_fqns == ["output", "let_projection"]
