"""OPT teacher parity against transformers on tiny random checkpoints."""

import pytest
import torch
from transformers import OPTConfig, OPTForCausalLM

from let_components.config import LETConfigError
from let_components.teacher import TeacherOptions, load_teacher
from tests.support.teachers import (
    assert_every_layer_matches,
    assert_final_state_matches,
    assert_frozen,
    randomize_weights,
)

N_LAYERS, SEQ_LEN, MAX_POSITIONS = 3, 24, 32

CASES = {
    "pre_ln": dict(do_layer_norm_before=True),
    "post_ln_projected": dict(do_layer_norm_before=False, word_embed_proj_dim=24),  # OPT-350m's shape
    "pre_ln_projected": dict(do_layer_norm_before=True, word_embed_proj_dim=24),
    "no_bias_no_affine": dict(enable_bias=False, layer_norm_elementwise_affine=False),
    "removed_final_norm": dict(_remove_final_layer_norm=True),
}


def make_checkpoint(path, **overrides) -> OPTForCausalLM:
    """Saves a tiny OPTForCausalLM (LM head tied to the embedding, as OPT ships) to `path`; returns it in eval."""
    torch.manual_seed(0)
    kwargs = dict(vocab_size=200, hidden_size=48, num_hidden_layers=N_LAYERS, num_attention_heads=4, ffn_dim=96,
                  max_position_embeddings=MAX_POSITIONS, word_embed_proj_dim=48)
    model = OPTForCausalLM(OPTConfig(**{**kwargs, **overrides}))
    randomize_weights(model)
    model.save_pretrained(path)
    return model.eval()


def _tokens(seq_len: int = SEQ_LEN) -> torch.Tensor:
    return torch.randint(0, 200, (3, seq_len), generator=torch.Generator().manual_seed(1))


def _teacher(path, layer: int = -1):
    return load_teacher(path, options=TeacherOptions(layer=layer, max_seq_len=MAX_POSITIONS))


@pytest.mark.parametrize("case", list(CASES))
def test_final_hidden_state_and_logits_match_transformers(tmp_path, case):
    """hidden_states[-1] is after the final norm and after project_out: the state the LM head reads."""
    model = make_checkpoint(tmp_path, **CASES[case])
    tokens = _tokens()
    teacher = _teacher(tmp_path)
    hidden = assert_final_state_matches(model, teacher, tokens)
    width = CASES[case].get("word_embed_proj_dim", 48)
    assert hidden.shape[-1] == teacher.hidden_size == width


@pytest.mark.parametrize("case", ["pre_ln", "post_ln_projected"])
def test_intermediate_layers_match_transformers(tmp_path, case):
    """layer i = output of block i = hidden_states[i + 1] (the last block's own output via a hook)."""
    model = make_checkpoint(tmp_path, **CASES[case])
    teachers = [_teacher(tmp_path, layer) for layer in range(N_LAYERS)]
    assert all(len(teacher.layers) == i + 1 and teacher.norm is None and teacher.project_out is None
               for i, teacher in enumerate(teachers))
    hiddens = assert_every_layer_matches(model, model.model.decoder.layers, teachers, _tokens())
    assert all(hidden.shape[-1] == teacher.hidden_size == 48 for hidden, teacher in zip(hiddens, teachers, strict=True))


def test_learned_positions_limit(tmp_path):
    """max_seq_len is max_position_embeddings, and the full length works (rows 2 .. max + 1)."""
    model = make_checkpoint(tmp_path)
    teacher = _teacher(tmp_path)
    assert (teacher.max_seq_len, teacher.vocab_size, teacher.n_layers) == (MAX_POSITIONS, 200, N_LAYERS)
    assert teacher.pos_embeddings.num_embeddings == MAX_POSITIONS + 2
    tokens = _tokens(MAX_POSITIONS)
    with torch.no_grad():
        ref = model(tokens, output_hidden_states=True)
        torch.testing.assert_close(teacher(tokens), ref.hidden_states[-1], atol=1e-4, rtol=0)


def test_unsupported_activation_is_refused(tmp_path):
    make_checkpoint(tmp_path, activation_function="silu")
    with pytest.raises(LETConfigError, match="activation_function"):
        _teacher(tmp_path)


def test_teacher_is_frozen(tmp_path):
    make_checkpoint(tmp_path)
    assert_frozen(_teacher(tmp_path), _tokens())
