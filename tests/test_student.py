import copy
import dataclasses
import json

import pytest
import torch
from torchtitan.config import ConfigManager

from let_components.student import Student, StudentStateDictAdapter, ffn_hidden_dim, student_args
from tests.helpers import REPO

PAPER_SHAPES = {  # dim, layers, heads, SwiGLU width
    "1.4B": (2048, 24, 16, 5632),
    "7B": (4096, 32, 32, 11008),
}


@pytest.mark.parametrize("flavor", PAPER_SHAPES)
def test_paper_student_shapes(flavor):
    args = student_args[flavor]
    dim, layers, heads, ffn = PAPER_SHAPES[flavor]
    assert (args.dim, args.n_layers, args.n_heads, ffn_hidden_dim(args)) == (dim, layers, heads, ffn)
    with torch.device("meta"):
        model = Student(dataclasses.replace(args, vocab_size=49152))
    assert model.layers["0"].feed_forward.w1.weight.shape == (ffn, dim)
    assert args.rope_scaling_args.scaling_factor == 1.0  # plain RoPE, not Llama-3.1 long-context scaling


def _job_config(*args: str):
    return ConfigManager().parse_args(["--job.config_file", str(REPO / "train_configs/let_debug.toml"), *args])


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


def test_qwen3_student_flavors_are_untied():
    """Tied qwen3 hits torch 2.13's FSDP2 duplicate-parameter check on 2+ ranks (torchtitan issues 2252, 2522)."""
    from let_components.student.qwen3 import qwen3_student_args

    assert all(not args.enable_weight_tying for args in qwen3_student_args.values())
