import copy
import dataclasses
import json
import math

import pytest
import torch

from let_components.student import Student, StudentStateDictAdapter, ffn_hidden_dim, student_args
from tests.support import REPO
from tests.support.config import parse_config

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


def test_qwen3_student_flavors_are_untied():
    """Tied qwen3 hits torch 2.13's FSDP2 duplicate-parameter check on 2+ ranks (torchtitan issues 2252, 2522)."""
    from let_components.student.qwen3 import qwen3_student_args

    assert all(not args.enable_weight_tying for args in qwen3_student_args.values())


def _initialised_student(*args: str, config: str = "train_configs/let_debug.toml", seed: int = 0) -> torch.nn.Module:
    """A student built from a config as torchtitan's Trainer does (args from the config, meta -> CPU, init_weights)."""
    from recipes.common import initialised_student

    return initialised_student(parse_config(config, *args), seed)


def _assert_normal(weight: torch.Tensor, std: float) -> None:
    """Mean ~0 and std ~`std`, each within 5 standard errors of its estimate for n normal draws."""
    n = weight.numel()
    assert abs(weight.mean().item()) < 5 * std / n**0.5
    assert abs(weight.std().item() - std) < 5 * std / (2 * n) ** 0.5


def test_default_init_is_torchtitans_embeddings_at_std_1():
    """Existing configs keep their numbers: torchtitan's llama3 init draws the token embeddings from N(0, 1)."""
    model = _initialised_student()
    assert model.model_args.init_scheme == "torchtitan"
    _assert_normal(model.tok_embeddings.weight, 1.0)
    # LM head: dim^-0.5 truncated at +-3 std, which shrinks the std by sqrt(1 - 6 phi(3) / (Phi(3) - Phi(-3)))
    phi3 = math.exp(-4.5) / math.sqrt(2 * math.pi)
    _assert_normal(model.output.weight, 256**-0.5 * math.sqrt(1 - 6 * phi3 / math.erf(3 / math.sqrt(2))))


@pytest.mark.parametrize("spec_name", ["let_llama", "let_qwen3"])
def test_hf_init_draws_embeddings_and_linears_at_002_and_scales_residual_outputs(spec_name):
    from let_components.student.init import residual_output_std

    model = _initialised_student("--student.init", "hf", "--model.name", spec_name)
    residual = residual_output_std(6)
    assert residual == pytest.approx(0.02 / 12**0.5)
    _assert_normal(model.tok_embeddings.weight, 0.02)
    _assert_normal(model.output.weight, 0.02)
    for block in model.layers.values():
        for linear in (block.attention.wq, block.attention.wk, block.attention.wv, block.feed_forward.w1,
                       block.feed_forward.w3):
            _assert_normal(linear.weight, 0.02)
        for linear in (block.attention.wo, block.feed_forward.w2):
            _assert_normal(linear.weight, residual)
        assert torch.equal(block.attention_norm.weight, torch.ones_like(block.attention_norm.weight))


@pytest.mark.parametrize("init", ["torchtitan", "hf"])
def test_baseline_and_let_students_get_the_same_init(init):
    """A baseline must start where its LET run starts: same seed, same weights (the learned projection aside)."""
    teacher = ["--let.teacher_path", str(REPO / "assets/teacher_debug"), "--student.init", init]
    baseline = _initialised_student(*teacher, config="train_configs/replication_baseline.toml").state_dict()
    let = _initialised_student(*teacher, "--let.projection", "linear",
                               config="train_configs/replication_let.toml").state_dict()
    assert "let_projection.weight" in let
    del let["let_projection.weight"]
    assert baseline.keys() == let.keys()
    assert all(torch.equal(baseline[key], let[key]) for key in baseline)
    other_seed = _initialised_student(*teacher, config="train_configs/replication_baseline.toml", seed=1)
    assert not torch.equal(other_seed.tok_embeddings.weight, baseline["tok_embeddings.weight"])


def test_hf_init_is_refused_for_the_moe_student_and_unknown_schemes_name_the_key():
    from let_components.config import LETConfigError

    with pytest.raises(LETConfigError, match=r"student\.init='hf'.*let_deepseek_v3"):
        _initialised_student("--student.init", "hf", "--model.name", "let_deepseek_v3")
    job_config = _job_config()
    job_config.student.init = "megatron"
    with pytest.raises(LETConfigError, match=r"student\.init='megatron': valid are torchtitan, hf"):
        dataclasses.replace(student_args["debugmodel"]).update_from_config(job_config)


def test_hf_init_refuses_a_parameter_it_has_no_rule_for():
    from let_components.config import LETConfigError
    from let_components.student.init import hf_init_

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Conv1d(4, 4, 1))
    with pytest.raises(LETConfigError, match=r"no hf rule for 1\.weight, 1\.bias"):
        hf_init_(model, n_layers=1)
