"""Teacher-folder failures: each a one-line LETConfigError naming let.teacher_path, the file and what is wrong,
found before training starts where the safetensors headers suffice (teacher/checks.py, checkpoint.py, loader.py)."""

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from let_components.config import LETConfigError, LETRuntimeError
from let_components.teacher import TeacherOptions, load_teacher, teacher_source
from let_components.teacher import check_teacher as check_source
from tests.support import ASSETS
from tests.support.config import parse_config
from tests.support.teachers import broken_teacher, rewrite_config

# what each broken folder's error says, after "let.teacher_path='<folder>': "
EXPECTED = {
    "nan weight": "model.safetensors tensor 'model.layers.1.mlp.down_proj.weight' holds 1 non-finite value(s) (nan)",
    "inf weight": "model.safetensors tensor 'model.norm.weight' holds 1 non-finite value(s) (inf)",
    "truncated safetensors": "model.safetensors is not a readable safetensors file (Error while deserializing "
                             "header: incomplete metadata, file not fully covered)",
    "invalid json": "config.json is not valid JSON",
    "shape mismatch": "model.safetensors tensor 'model.layers.0.mlp.gate_proj.weight' has shape [512, 128] but "
                      "config.json implies [1024, 128]",
    "missing tensor": "the weight files lack 1 tensor(s) config.json requires, first 'layers.2.attention.wv.weight'",
    "missing shard": "model-00002-of-00002.safetensors is missing (named by model.safetensors.index.json)",
}
BEFORE_START = ("truncated safetensors", "invalid json", "shape mismatch", "missing tensor", "missing shard")


def check_teacher(job_config, teacher_needed: bool, resuming: bool = False) -> None:
    """The teacher folder's pre-start checks (prestart.check_teacher_side) for a run of `job_config`."""
    options = TeacherOptions(layer=job_config.let.teacher_layer, max_seq_len=job_config.training.seq_len)
    check_source(teacher_source(job_config), options, "training.seq_len", teacher_needed, resuming)


def _job_config(teacher, dump_folder, *args: str):
    return parse_config(
        "train_configs/let_debug.toml", "--let.teacher_path", str(teacher), "--job.dump_folder", str(dump_folder), *args
    )


def _one_line_error(error: pytest.ExceptionInfo, folder, expected: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"let.teacher_path='{folder}': "), message
    assert expected in message, message


@pytest.mark.parametrize("kind", BEFORE_START)
def test_broken_folder_fails_the_checks_before_start(tmp_path, kind):
    folder = broken_teacher(tmp_path / "teacher", kind)
    with pytest.raises(LETConfigError) as error:
        check_teacher(_job_config(folder, tmp_path / "out"), teacher_needed=True)
    _one_line_error(error, folder, EXPECTED[kind])


@pytest.mark.parametrize("kind", EXPECTED)
def test_broken_folder_fails_loading_with_the_same_line(tmp_path, kind):
    folder = broken_teacher(tmp_path / "teacher", kind)
    with pytest.raises(LETConfigError) as error:
        load_teacher(folder)
    _one_line_error(error, folder, EXPECTED[kind])


def test_non_finite_weights_need_reading_so_the_checks_before_start_pass(tmp_path):
    """Only shapes are read before start; NaN/inf are found when the teacher loads (step 1, before any update)."""
    folder = broken_teacher(tmp_path / "teacher", "nan weight")
    check_teacher(_job_config(folder, tmp_path / "out"), teacher_needed=True)


def test_a_resume_with_a_different_teacher_at_the_same_path_is_an_error(tmp_path):
    teacher, out = tmp_path / "teacher", tmp_path / "out"
    shutil.copytree(ASSETS / "teacher_debug", teacher)
    teacher_source(_job_config(teacher, out)).keep(needed=True)
    moved = tmp_path / "moved"
    shutil.copytree(teacher, moved)  # a copy of the same teacher keeps its fingerprint
    shutil.rmtree(teacher)
    moved.rename(teacher)
    check_teacher(_job_config(teacher, out), teacher_needed=True, resuming=True)
    # same shapes, other values: what re-exporting another checkpoint to the same path looks like
    state_dict = load_file(teacher / "model.safetensors")
    state_dict["model.embed_tokens.weight"] = torch.randn_like(state_dict["model.embed_tokens.weight"])
    save_file(state_dict, teacher / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(LETRuntimeError) as error:  # a training-time stop (exit 3), not a configuration mistake
        check_teacher(_job_config(teacher, out), teacher_needed=True, resuming=True)
    _one_line_error(error, teacher, "model.safetensors changed since this run started")
    check_teacher(_job_config(teacher, out), teacher_needed=True, resuming=False)  # a fresh run records anew


def test_a_multimodal_teacher_is_read_by_its_text_settings(tmp_path):
    """Review finding: a multimodal config.json (model_type gemma3, the text model's settings under text_config, its
    vocabulary size left out as the class default) crashed the checks and the student's vocabulary with a KeyError;
    every reader now takes the text settings from one place (teacher.text_config), defaults filled in."""
    from transformers import AutoModelForCausalLM, Gemma3Config

    from let_components.tokens import token_alignment

    text = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=1, head_dim=16, sliding_window=8)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14)
    torch.manual_seed(0)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    AutoModelForCausalLM.from_config(config).eval().save_pretrained(tmp_path / "gemma3")
    saved = __import__("json").loads((tmp_path / "gemma3" / "config.json").read_text())
    assert saved["model_type"] == "gemma3" and "vocab_size" not in saved
    job_config = _job_config(tmp_path / "gemma3", tmp_path / "run", "--let.teacher_layer", "1")
    check_teacher(job_config, teacher_needed=True)
    from let_components.teacher import text_config

    assert token_alignment(job_config).student_vocab_size(job_config, teacher_source(job_config)) == 300
    assert text_config({"model_type": "gemma3", "text_config": {"hidden_size": 64}})["vocab_size"] == 262_208
    teacher = load_teacher(tmp_path / "gemma3", options=TeacherOptions(max_seq_len=32))
    assert teacher(torch.randint(0, 300, (1, 8))).shape == (1, 8, 64)


@pytest.mark.parametrize("names", ["gpt2's own", "standard too"])
def test_learned_positions_bound_the_sequence_through_transformers_too(tmp_path, names):
    """Review finding: the transformers backend had no position limit, so a GPT-2 teacher (learned positions,
    n_positions) with a longer training.seq_len passed the checks and failed at its first forward. Its config.json
    names its sizes n_embd and n_layer (read through transformers), or also by the standard names."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=64, n_embd=32, n_layer=2, n_head=2)).save_pretrained(
        tmp_path / "gpt2")
    if names == "standard too":
        rewrite_config(tmp_path / "gpt2", num_hidden_layers=2, hidden_size=32)
    with pytest.raises(LETConfigError) as error:  # let_debug trains 256-token windows
        check_teacher(_job_config(tmp_path / "gpt2", tmp_path / "run"), teacher_needed=True)
    assert str(error.value) == ("training.seq_len=256: the teacher at let.teacher_path has learned positions for at "
                                "most 64 tokens; use training.seq_len <= 64")
    check_teacher(_job_config(tmp_path / "gpt2", tmp_path / "run", "--training.seq_len", "64"), teacher_needed=True)
    assert load_teacher(tmp_path / "gpt2", options=TeacherOptions(max_seq_len=64)).max_seq_len == 64
