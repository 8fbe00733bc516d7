"""Teacher-folder failures: each a one-line LETConfigError naming let.teacher_path, the file and what is wrong,
found before training starts where the safetensors headers suffice (teacher/checks.py, checkpoint.py, loader.py)."""

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from let_components.config import LETConfigError, LETRuntimeError
from let_components.teacher import check_teacher, keep_teacher_fingerprint, load_teacher
from tests.support import ASSETS
from tests.support.config import parse_config
from tests.support.teachers import broken_teacher

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
    keep_teacher_fingerprint(str(teacher), str(out))
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
