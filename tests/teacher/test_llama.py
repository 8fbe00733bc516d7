"""Llama-family teachers (SmolLM, Llama-3.2 shapes) against transformers on tiny random checkpoints."""

import json

import pytest
import torch

from let_components.config import LETConfigError
from let_components.teacher import TeacherOptions, load_teacher
from tests.support.teachers import rewrite_config, save_llama

LLAMA3_ROPE = {
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}
CASES = {
    # SmolLM-135M shape in miniature: GQA, tied embeddings, plain RoPE
    "smollm_tied_gqa": dict(tie_word_embeddings=True, num_key_value_heads=2),
    # Llama-3.2-1B shape in miniature: GQA, tied, Llama-3 RoPE scaling
    "llama32_tied_rope_scaling": dict(tie_word_embeddings=True, num_key_value_heads=2, rope_scaling=LLAMA3_ROPE),
    "untied_mha": dict(tie_word_embeddings=False, num_key_value_heads=4),
    "untied_rope_scaling": dict(tie_word_embeddings=False, rope_scaling=LLAMA3_ROPE),
}


def _to_v4_config(folder) -> None:
    """Rewrite transformers 5.x `rope_parameters` as the 4.x keys `rope_theta` + `rope_scaling`."""
    config = json.loads((folder / "config.json").read_text())
    rope = dict(config.pop("rope_parameters"))
    theta = rope.pop("rope_theta")
    scaling = rope if rope.get("rope_type") != "default" else None
    rewrite_config(folder, rope_parameters=None, rope_theta=theta, rope_scaling=scaling)
    assert "rope_parameters" not in json.loads((folder / "config.json").read_text())


def _reference(folder, ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    return out.hidden_states, out.logits


@pytest.mark.parametrize("config_style", ["v5", "v4"])
@pytest.mark.parametrize("case", CASES)
def test_final_hidden_state_matches_transformers(tmp_path, case, config_style):
    folder = save_llama(tmp_path / case, **CASES[case])
    ids = torch.randint(0, 300, (3, 40), generator=torch.Generator().manual_seed(1))
    hidden_states, logits = _reference(folder, ids)
    if config_style == "v4":
        _to_v4_config(folder)
    teacher = load_teacher(folder, options=TeacherOptions(max_seq_len=40))
    with torch.no_grad():
        final = teacher(ids)
        assert final.shape == (3, 40, 64)
        torch.testing.assert_close(final, hidden_states[-1], atol=1e-4, rtol=0)
        torch.testing.assert_close(teacher.logits(final), logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_teacher_layer_is_the_output_of_that_block(tmp_path, layer):
    from transformers import AutoModelForCausalLM

    folder = save_llama(tmp_path / "t", tie_word_embeddings=True)
    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(2))
    # a hook, not hidden_states[layer + 1]: transformers puts the post-norm state in the last slot
    model, outputs = AutoModelForCausalLM.from_pretrained(folder).eval(), []
    model.model.layers[layer].register_forward_hook(lambda module, args, out: outputs.append(out))
    with torch.no_grad():
        hidden_states = model(ids, output_hidden_states=True).hidden_states
    block_output = outputs[0][0] if isinstance(outputs[0], tuple) else outputs[0]
    if layer < 2:
        torch.testing.assert_close(block_output, hidden_states[layer + 1])
    teacher = load_teacher(folder, options=TeacherOptions(layer=layer, max_seq_len=24))
    assert len(teacher.layers) == layer + 1  # later blocks are never built
    with torch.no_grad():
        torch.testing.assert_close(teacher(ids), block_output, atol=1e-4, rtol=0)


def test_teacher_is_frozen_and_unchanged_by_student_training(tmp_path):
    from let_components.student import Student, StudentArgs
    from let_components.terms.alignment import alignment_loss
    from let_components.terms.capture import BlockCapture

    teacher = load_teacher(save_llama(tmp_path / "t"), options=TeacherOptions(max_seq_len=16))
    assert all(not p.requires_grad for p in teacher.parameters())
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = Student(StudentArgs(dim=32, n_layers=2, n_heads=4, vocab_size=300, max_seq_len=16))
    with torch.no_grad():
        student.init_weights()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-2)
    ids = torch.randint(0, 300, (2, 16))
    for _ in range(3):
        with torch.no_grad():
            target = teacher(ids)
        capture = BlockCapture([student], 0)
        with capture.capturing():
            logits = student(ids)
        hidden = capture.pop()
        loss = logits.logsumexp(-1).mean() + alignment_loss(hidden, target, ids) / ids.numel()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(p.grad is None for p in teacher.parameters())
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_unsupported_model_type_names_the_key(tmp_path):
    folder = save_llama(tmp_path / "t")
    rewrite_config(folder, model_type="no_such_lm")
    with pytest.raises(LETConfigError, match="model_type 'no_such_lm' is not a supported teacher"):
        load_teacher(folder)
    # a family transformers knows, with another family's weights: the weight check says so before anything loads
    rewrite_config(folder, model_type="mamba")
    with pytest.raises(LETConfigError, match="the weight files lack .* tensor.s. config.json requires"):
        load_teacher(folder)


def test_missing_folder_and_bin_only_checkpoints_are_refused(tmp_path):
    with pytest.raises(LETConfigError, match="no config.json"):
        load_teacher(tmp_path / "nowhere")
    folder = save_llama(tmp_path / "bin")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(LETConfigError, match=r"only \*.bin weights"):
        load_teacher(folder)


def test_sharded_checkpoint_loads(tmp_path):
    from transformers import AutoModelForCausalLM

    folder = save_llama(tmp_path / "t")
    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(folder).save_pretrained(sharded, max_shard_size="100KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    ids = torch.randint(0, 300, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(
            load_teacher(sharded, options=TeacherOptions(max_seq_len=12))(ids),
            load_teacher(folder, options=TeacherOptions(max_seq_len=12))(ids),
        )


def test_unsupported_rope_type_is_refused(tmp_path):
    folder = save_llama(tmp_path / "t")
    rewrite_config(folder, rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0})
    with pytest.raises(LETConfigError, match="rope_type='yarn'"):
        load_teacher(folder)
