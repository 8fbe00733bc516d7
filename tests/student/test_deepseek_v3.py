"""The `let_deepseek_v3` student (let_components/student/deepseek_v3.py) beside torchtitan's validator."""

import copy

import pytest
import torch
from torchtitan.protocols.train_spec import get_train_spec

import let_components  # noqa: F401  (registers the student specs)
from tests.support.config import parse_config


def test_the_moe_student_asks_for_no_attention_masks_with_sdpa():
    """torchtitan's validator asks every model for masks and reads a TypeError as "none": deepseek_v3 built flex
    masks anyway, and its SDPA attention asserted on them at the first validation."""
    spec = get_train_spec("let_deepseek_v3")
    args = copy.deepcopy(spec.model_args["debugmodel"])
    args.update_from_config(parse_config("train_configs/let_deepseek_v3_debug.toml"))
    with torch.device("meta"):
        model = spec.model_cls(args)
    assert model.model_args.attn_type == "sdpa"
    with pytest.raises(TypeError):
        model.get_attention_masks(torch.zeros(1, 8, dtype=torch.long), tokenizer=None)
