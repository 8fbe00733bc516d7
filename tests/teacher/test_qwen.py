"""Qwen2 / Qwen2.5 and Qwen3 teachers against transformers on tiny random checkpoints: every block and the final
state (fp32, atol 1e-4), from both config.json styles (transformers 5.x `rope_parameters` + `layer_types`, 4.x
`rope_theta` without `layer_types`)."""

import json

import pytest
import torch

from let_components.config import LETConfigError
from let_components.teacher import TeacherOptions, load_teacher
from tests.support.teachers import assert_final_state_matches, rewrite_config, save_qwen

CASES = {
    # Qwen2.5-0.5B in miniature: q/k/v biases, GQA, tied embeddings
    "qwen2_tied_gqa_bias": ("qwen2", dict(tie_word_embeddings=True)),
    "qwen2_untied": ("qwen2", dict(num_key_value_heads=4)),
    # Qwen3-0.6B in miniature: q/k norm, explicit head_dim (32) != hidden/heads (16), tied
    "qwen3_tied_head_dim": ("qwen3", dict(tie_word_embeddings=True, head_dim=32)),
    # Qwen3-8B in miniature: untied
    "qwen3_untied": ("qwen3", dict(head_dim=16)),
}
LAYERS = 3


def _to_v4_config(folder) -> None:
    """The keys transformers 4.x writes: `rope_theta` at top level, no `rope_parameters`, no `layer_types`."""
    config = json.loads((folder / "config.json").read_text())
    theta = config["rope_parameters"]["rope_theta"]
    rewrite_config(folder, rope_parameters=None, layer_types=None, rope_theta=theta, rope_scaling=None)


@pytest.mark.parametrize("config_style", ["v5", "v4"])
@pytest.mark.parametrize("case", CASES)
def test_every_block_and_the_final_state_match_transformers(tmp_path, case, config_style):
    model_type, kwargs = CASES[case]
    folder = save_qwen(tmp_path / case, model_type, **kwargs)
    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(1))
    from transformers import AutoModelForCausalLM

    model, blocks = AutoModelForCausalLM.from_pretrained(folder).eval(), []
    for layer in model.model.layers:
        layer.register_forward_hook(lambda module, args, out: blocks.append(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        model(ids)
    assert len(blocks) == LAYERS
    if config_style == "v4":
        _to_v4_config(folder)
    final = assert_final_state_matches(model, load_teacher(folder, options=TeacherOptions(max_seq_len=24)), ids)
    assert final.shape == (2, 24, 64)
    for layer in range(LAYERS):
        teacher = load_teacher(folder, options=TeacherOptions(layer=layer, max_seq_len=24))
        assert len(teacher.layers) == layer + 1
        with torch.no_grad():
            torch.testing.assert_close(teacher(ids), blocks[layer], atol=1e-4, rtol=0)


def test_real_qwen25_config_with_sliding_window_off_loads(tmp_path):
    """Qwen2.5 ships sliding_window/max_window_layers with use_sliding_window = false: full attention, accepted."""
    folder = save_qwen(tmp_path / "t", "qwen2")
    rewrite_config(folder, use_sliding_window=False, sliding_window=32768, max_window_layers=21, layer_types=None)
    teacher = load_teacher(folder, options=TeacherOptions(max_seq_len=8))
    assert len(teacher.layers) == LAYERS


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(use_sliding_window=True, sliding_window=16, max_window_layers=1), "sliding-window attention is on"),
        (dict(layer_types=["full_attention", "sliding_attention", "sliding_attention"]), "layer_types"),
        (dict(hidden_act="gelu"), "hidden_act='gelu'"),
        (dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0}), "rope_type='yarn'"),
    ],
)
def test_variants_that_change_the_math_are_refused_naming_the_flag(tmp_path, changes, message):
    folder = save_qwen(tmp_path / "t", "qwen2")
    rewrite_config(folder, **changes)
    with pytest.raises(LETConfigError, match=message) as error:
        load_teacher(folder)
    assert "\n" not in str(error.value)


def test_qwen3_attention_bias_is_refused(tmp_path):
    folder = save_qwen(tmp_path / "t", "qwen3", head_dim=16)
    rewrite_config(folder, attention_bias=True)
    with pytest.raises(LETConfigError, match="attention_bias=true"):
        load_teacher(folder)
