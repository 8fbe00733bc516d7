"""What every student family shares (let_components/student/spec.py): vocabulary and projection width read from the
teacher, and an HF export without the LET projection."""

import copy
import dataclasses
import json

import pytest
import torch

from let_components.student import Student, StudentStateDictAdapter, student_args
from tests.support.config import parse_config


def _job_config(*args: str):
    return parse_config("train_configs/let_debug.toml", *args)


def test_vocab_and_projection_width_come_from_the_teacher(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "opt", "hidden_size": 1024, "word_embed_proj_dim": 512, "vocab_size": 50272,
         "num_hidden_layers": 24, "max_position_embeddings": 2048}
    ))
    args = dataclasses.replace(student_args["debugmodel"])
    args.update_from_config(_job_config("--let.teacher_path", str(tmp_path), "--let.projection", "linear"))
    # OPT-350m's final state is word_embed_proj_dim wide (after project_out), not hidden_size
    assert (args.vocab_size, args.projection_dim) == (50272, 512)
    args = dataclasses.replace(student_args["debugmodel"])
    args.update_from_config(_job_config("--let.teacher_path", str(tmp_path)))
    assert (args.vocab_size, args.projection_dim) == (50272, 0)  # interpolate: no parameters


def test_hf_export_drops_the_let_projection():
    args = dataclasses.replace(student_args["debugmodel"], n_layers=1, projection_dim=64)
    model = Student(args)
    assert "let_projection.weight" in model.state_dict()
    hf = StudentStateDictAdapter(args, None).to_hf(model.state_dict())
    assert not any("projection" in key for key in hf)
    assert "model.embed_tokens.weight" in hf and "lm_head.weight" in hf


@pytest.mark.parametrize("spec_name", ["let_qwen3", "let_deepseek_v3"])
def test_other_families_take_vocab_and_projection_from_the_teacher_and_export_without_it(tmp_path, spec_name):
    from torchtitan.protocols.train_spec import get_train_spec

    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "qwen3", "hidden_size": 1024, "vocab_size": 151936, "num_hidden_layers": 28}
    ))
    spec = get_train_spec(spec_name)
    args = copy.deepcopy(spec.model_args["debugmodel"])
    args.update_from_config(_job_config("--let.teacher_path", str(tmp_path), "--let.projection", "linear"))
    assert (args.vocab_size, args.projection_dim) == (151936, 1024)
    args.vocab_size, args.projection_dim = 64, 8
    with torch.device("meta"):
        model = spec.model_cls(args)
    assert model.let_projection.weight.shape == (8, args.dim)
    hf = spec.state_dict_adapter(args, None).to_hf(model.state_dict())
    assert "model.embed_tokens.weight" in hf and not any("projection" in key for key in hf)
