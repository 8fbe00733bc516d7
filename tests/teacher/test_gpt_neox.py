"""GPT-NeoX (Pythia) teacher parity against transformers on tiny random checkpoints."""

import json

import pytest
import torch
from transformers import AutoConfig, GPTNeoXConfig, GPTNeoXForCausalLM

from let_components.config import LETConfigError
from let_components.teacher import TeacherOptions, load_teacher
from let_components.teacher.gpt_neox import GPTNeoXArgs
from tests.support.teachers import (
    assert_every_layer_matches,
    assert_final_state_matches,
    assert_frozen,
    randomize_weights,
)

N_LAYERS, SEQ_LEN = 3, 24


def write_config_style(config_file, style: str) -> None:
    """Rewrites config.json's RoPE keys as transformers 5.x (`rope_parameters`) or 4.x (`rotary_pct`,
    `rotary_emb_base`) writes them, whichever transformers saved it."""
    raw = json.loads(config_file.read_text())
    rope = raw.pop("rope_parameters", None) or {
        "rope_type": "default",
        "partial_rotary_factor": raw.get("rotary_pct", 0.25),
        "rope_theta": raw.get("rotary_emb_base", raw.get("rope_theta", 10000.0)),
    }
    for key in ("rotary_pct", "rotary_emb_base", "rope_theta", "rope_scaling"):
        raw.pop(key, None)
    if style == "5.x":
        raw["rope_parameters"] = rope
    else:
        raw.update(rotary_pct=rope["partial_rotary_factor"], rotary_emb_base=rope["rope_theta"])
    config_file.write_text(json.dumps(raw))


def make_checkpoint(path, style: str = "5.x", **overrides) -> GPTNeoXForCausalLM:
    """Saves a tiny GPTNeoXForCausalLM to `path` with config.json in `style`; returns it in eval mode."""
    torch.manual_seed(0)
    kwargs = dict(vocab_size=200, hidden_size=48, num_hidden_layers=N_LAYERS, num_attention_heads=4,
                  intermediate_size=96, max_position_embeddings=64, rotary_pct=0.25, rotary_emb_base=1000.0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(**{**kwargs, **overrides}))
    randomize_weights(model)
    model.save_pretrained(path)
    write_config_style(path / "config.json", style)
    return model.eval()


def _tokens() -> torch.Tensor:
    return torch.randint(0, 200, (3, SEQ_LEN), generator=torch.Generator().manual_seed(1))


def _teacher(path, layer: int = -1):
    return load_teacher(path, options=TeacherOptions(layer=layer, max_seq_len=32))


@pytest.mark.parametrize("style", ["5.x", "4.x"])
@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("rotary_pct", [0.25, 1.0])
def test_final_hidden_state_and_logits_match_transformers(tmp_path, rotary_pct, parallel, style):
    model = make_checkpoint(tmp_path, style, rotary_pct=rotary_pct, use_parallel_residual=parallel)
    tokens = _tokens()
    teacher = _teacher(tmp_path)
    assert_final_state_matches(model, teacher, tokens)
    assert (teacher.hidden_size, teacher.vocab_size, teacher.n_layers, teacher.max_seq_len) == (48, 200, N_LAYERS, None)


@pytest.mark.parametrize("parallel", [True, False])
def test_intermediate_layers_match_transformers(tmp_path, parallel):
    """layer i = output of block i = hidden_states[i + 1]; the last block is read with a hook, because
    transformers 5 replaces hidden_states[-1] by the final-norm output."""
    model = make_checkpoint(tmp_path, use_parallel_residual=parallel)
    teachers = [_teacher(tmp_path, layer) for layer in range(N_LAYERS)]
    assert all(len(teacher.layers) == i + 1 and teacher.norm is None for i, teacher in enumerate(teachers))
    assert_every_layer_matches(model, model.gpt_neox.layers, teachers, _tokens())


def test_config_styles_load_to_the_same_model(tmp_path):
    """A 4.x config.json (rotary_pct, rotary_emb_base) means the same as the 5.x one, to transformers and to us."""
    make_checkpoint(tmp_path / "v5", "5.x", rotary_pct=0.5)
    make_checkpoint(tmp_path / "v4", "4.x", rotary_pct=0.5)
    v4, v5 = (json.loads((tmp_path / v / "config.json").read_text()) for v in ("v4", "v5"))
    assert "rope_parameters" not in v4 and "rotary_pct" not in v5
    if hasattr(AutoConfig.from_pretrained(tmp_path / "v5"), "rope_parameters"):  # transformers >= 5
        assert AutoConfig.from_pretrained(tmp_path / "v4").rope_parameters == v5["rope_parameters"]
    assert GPTNeoXArgs.from_hf(v4) == GPTNeoXArgs.from_hf(v5)
    assert GPTNeoXArgs.from_hf(v5).rotary_dim == 6 and GPTNeoXArgs.from_hf(v5).rope_theta == 1000.0
    tokens = _tokens()
    with torch.no_grad():
        assert torch.equal(_teacher(tmp_path / "v4")(tokens), _teacher(tmp_path / "v5")(tokens))


@pytest.mark.parametrize(
    "overrides",
    [dict(hidden_act="gelu_new"), dict(hidden_act="gelu_fast", attention_bias=False), dict(tie_word_embeddings=True)],
)
def test_variants_match_transformers(tmp_path, overrides):
    model = make_checkpoint(tmp_path, **overrides)
    tokens = _tokens()
    teacher = _teacher(tmp_path)
    assert_final_state_matches(model, teacher, tokens)


def test_unsupported_settings_are_refused(tmp_path):
    make_checkpoint(tmp_path)
    config_file = tmp_path / "config.json"
    raw = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**raw, "hidden_act": "silu"}))
    with pytest.raises(LETConfigError, match="hidden_act"):
        _teacher(tmp_path)
    config_file.write_text(json.dumps({**raw, "rope_parameters": {**raw["rope_parameters"], "rope_type": "linear"}}))
    with pytest.raises(LETConfigError, match="rope_type"):
        _teacher(tmp_path)
    config_file.write_text(json.dumps(raw))
    with pytest.raises(LETConfigError, match="teacher_layer"):
        _teacher(tmp_path, layer=N_LAYERS)


def test_teacher_is_frozen(tmp_path):
    make_checkpoint(tmp_path)
    assert_frozen(_teacher(tmp_path), _tokens())
