"""Tiny Hugging Face teacher folders for the tests: random weights saved by transformers (the test-only reference),
teachers broken in one way, and the parity checks against transformers (final state, every layer)."""

import json
from pathlib import Path

from recipes.assets.hf_folder import copy_tokenizer_files
from tests.support import ASSETS


def save_llama(folder: Path, tokenizer_dir: Path | None = None, **config_kwargs) -> Path:
    """A random-weight LlamaForCausalLM saved with save_pretrained (+ the tokenizer files, if given)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    defaults = dict(
        vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=10000.0, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(LlamaConfig(**{**defaults, **config_kwargs})).eval()
    model.save_pretrained(folder)
    if tokenizer_dir is not None:
        copy_tokenizer_files(tokenizer_dir, folder)
    return folder


def save_qwen(folder: Path, model_type: str, tokenizer_dir: Path | None = None, **config_kwargs) -> Path:
    """A random-weight Qwen2ForCausalLM / Qwen3ForCausalLM (model_type "qwen2" / "qwen3") saved with save_pretrained."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    defaults = dict(
        vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rope_theta=1_000_000.0, tie_word_embeddings=False,
    )
    config = AutoConfig.for_model(model_type, **{**defaults, **config_kwargs})
    model = AutoModelForCausalLM.from_config(config).eval()
    # transformers initialises norms to 1 and biases to 0: randomise them so the key mapping is really tested
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1 + 0.2 * torch.randn_like(param))
            elif name.endswith(".bias"):
                param.copy_(0.2 * torch.randn_like(param))
    model.save_pretrained(folder)
    if tokenizer_dir is not None:
        copy_tokenizer_files(tokenizer_dir, folder)
    return folder


def rewrite_config(folder: Path, **changes) -> None:
    """Edit config.json in place (None deletes a key): e.g. turn transformers 5.x keys into 4.x ones."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config, indent=2))


def save_tiny_teacher(folder: Path, model_type: str, gpt2_style_tokenizer: bool = False) -> Path:
    """A random teacher of one architecture in the project tokenizer's 4096-token vocabulary, with that tokenizer.

    gpt2_style_tokenizer: bos and eos are the same token, as in Pythia's and OPT's tokenizers.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    shapes = {
        "llama": dict(hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2,
                      tie_word_embeddings=True),
        "gpt_neox": dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, rotary_pct=0.25),
        "opt": dict(hidden_size=64, ffn_dim=128, num_attention_heads=4, word_embed_proj_dim=64),
    }
    config = AutoConfig.for_model(
        model_type, vocab_size=4096, num_hidden_layers=2, max_position_embeddings=512, **shapes[model_type]
    )
    AutoModelForCausalLM.from_config(config).eval().save_pretrained(folder)
    tokenizer = ASSETS / "tokenizer"
    copy_tokenizer_files(tokenizer, folder)
    tokenizer_config = json.loads((tokenizer / "tokenizer_config.json").read_text())
    if gpt2_style_tokenizer:
        tokenizer_config["bos_token"] = tokenizer_config["eos_token"]
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


def assert_final_state_matches(model, teacher, tokens):
    """teacher(tokens) equals transformers' hidden_states[-1], and its logits the HF logits (fp32, atol 1e-4)."""
    import torch

    with torch.no_grad():
        ref = model(tokens, output_hidden_states=True)
        hidden = teacher(tokens)
        torch.testing.assert_close(hidden, ref.hidden_states[-1], atol=1e-4, rtol=0)
        torch.testing.assert_close(teacher.logits(hidden), ref.logits, atol=1e-4, rtol=0)
    return hidden


def randomize_weights(model) -> None:
    """Non-trivial norms, biases and positions, so a swapped or dropped tensor shows up: LayerNorm weights near 1
    and biases near 0, every other tensor small and random."""
    import torch

    for name, param in model.named_parameters():
        if "layer_norm" in name or "layernorm" in name:
            param.data = (1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(param)
        else:
            param.data = 0.1 * torch.randn_like(param)


def assert_every_layer_matches(model, blocks, teachers, tokens) -> list:
    """teachers[i] (built with teacher_layer = i) gives the output of block i: transformers' hidden_states[i + 1],
    and the block's own output read with a hook, because transformers 5 puts the final-norm state in the last slot
    (fp32, atol 1e-4). Returns the teachers' outputs."""
    import torch

    outputs = {}
    hooks = [block.register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, out))
             for i, block in enumerate(blocks)]
    try:
        with torch.no_grad():
            ref = model(tokens, output_hidden_states=True)
    finally:
        for hook in hooks:
            hook.remove()
    hiddens = []
    with torch.no_grad():
        for layer, teacher in enumerate(teachers):
            hidden = teacher(tokens)
            torch.testing.assert_close(hidden, outputs[layer], atol=1e-4, rtol=0)
            if layer < len(blocks) - 1:
                torch.testing.assert_close(hidden, ref.hidden_states[layer + 1], atol=1e-4, rtol=0)
            hiddens.append(hidden)
    return hiddens


def assert_frozen(teacher, tokens) -> None:
    """In eval mode, no parameter trainable, and its output carries no graph."""
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert teacher(tokens).requires_grad is False


BROKEN_TEACHERS = ("nan weight", "inf weight", "truncated safetensors", "invalid json", "shape mismatch",
                   "missing tokenizer", "missing tensor", "missing shard")


def broken_teacher(folder: Path, kind: str) -> Path:
    """A copy of the tiny pretrained teacher broken in one way (a name of BROKEN_TEACHERS)."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(ASSETS / "teacher_debug", folder)
    weights = folder / "model.safetensors"
    state_dict = load_file(weights)
    if kind in ("nan weight", "inf weight"):
        name = "model.layers.1.mlp.down_proj.weight" if kind == "nan weight" else "model.norm.weight"
        state_dict[name].view(-1)[3] = float("nan" if kind == "nan weight" else "inf")
        save_file(state_dict, weights, metadata={"format": "pt"})
    elif kind == "truncated safetensors":
        with open(weights, "r+b") as handle:
            handle.truncate(weights.stat().st_size // 2)
    elif kind == "invalid json":
        (folder / "config.json").write_text('{"model_type": "llama", "hidden_size": 128,')
    elif kind == "shape mismatch":
        config = json.loads((folder / "config.json").read_text())
        rewrite_config(folder, intermediate_size=2 * config["intermediate_size"])
    elif kind == "missing tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (folder / name).unlink()
    elif kind == "missing tensor":
        del state_dict["model.layers.2.self_attn.v_proj.weight"]
        save_file(state_dict, weights, metadata={"format": "pt"})
    elif kind == "missing shard":
        shards = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
        index = {"weight_map": {name: shards[i % 2] for i, name in enumerate(state_dict)}}
        weights.rename(folder / shards[0])
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        raise ValueError(kind)
    return folder
