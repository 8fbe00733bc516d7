"""Student initialisation (let_components/student/init.py, student.init): torchtitan's scheme by default, HF's on
request, the same weights for a baseline and its LET run."""

import dataclasses
import math

import pytest
import torch

from let_components.student import student_args
from tests.support import REPO
from tests.support.config import parse_config


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
    job_config = parse_config("train_configs/let_debug.toml")
    job_config.student.init = "megatron"
    with pytest.raises(LETConfigError, match=r"student\.init='megatron': valid are torchtitan, hf"):
        dataclasses.replace(student_args["debugmodel"]).update_from_config(job_config)


def test_hf_init_refuses_a_parameter_it_has_no_rule_for():
    from let_components.config import LETConfigError
    from let_components.student.init import hf_init_

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Conv1d(4, 4, 1))
    with pytest.raises(LETConfigError, match=r"no hf rule for 1\.weight, 1\.bias"):
        hf_init_(model, n_layers=1)
