"""Llama-family teachers (SmolLM, Llama-3.x) built from torchtitan's own llama3 modules.

Reusing torchtitan's Transformer keeps the teacher's math identical to the student's (and compilable);
the HF mapping is torchtitan's Llama3StateDictAdapter.
"""

from typing import Any

import torch
from torchtitan.models.llama3.model.args import RoPEScalingArgs, TransformerModelArgs
from torchtitan.models.llama3.model.model import Transformer
from torchtitan.models.llama3.model.state_dict_adapter import Llama3StateDictAdapter

from ..config import LETConfigError
from .checkpoint import rope_config, strip_prefix
from .modules import cut_to_layer, lm_head_logits, tied_embeddings
from .registry import TeacherArchitecture, TeacherOptions, register_teacher

# Llama-3 RoPE with factor 1 leaves every frequency unchanged: how "no scaling" is said to torchtitan.
NO_ROPE_SCALING = RoPEScalingArgs(scaling_factor=1.0)


def llama_args(config: dict[str, Any], options: TeacherOptions) -> TransformerModelArgs:
    """torchtitan model args equal to an HF LlamaConfig; anything torchtitan cannot express is refused."""
    dim, n_heads = config["hidden_size"], config["num_attention_heads"]
    if config.get("head_dim", dim // n_heads) != dim // n_heads:
        raise LETConfigError(f"teacher config head_dim={config['head_dim']} != hidden_size/num_attention_heads")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise LETConfigError("teacher config: attention_bias/mlp_bias Llama variants are not supported")
    if config.get("hidden_act", "silu") != "silu":
        raise LETConfigError(f"teacher config hidden_act={config['hidden_act']!r}: only 'silu' for llama")
    rope = rope_config(config)
    if rope["rope_type"] == "llama3":
        scaling = RoPEScalingArgs(
            scaling_factor=rope["factor"],
            low_freq_factor=rope["low_freq_factor"],
            high_freq_factor=rope["high_freq_factor"],
            original_max_position_embeddings=rope["original_max_position_embeddings"],
        )
    elif rope["rope_type"] == "default":
        scaling = NO_ROPE_SCALING
    else:
        raise LETConfigError(f"teacher config rope_type={rope['rope_type']!r}: supported are 'default' and 'llama3'")
    # torchtitan derives the SwiGLU width from dim; rounding up to a multiple of intermediate_size,
    # from just below it, reproduces HF's explicit intermediate_size exactly.
    base_hidden = int(2 * 4 * dim / 3)
    intermediate = config["intermediate_size"]
    return TransformerModelArgs(
        dim=dim,
        n_layers=config["num_hidden_layers"],
        n_heads=n_heads,
        n_kv_heads=config.get("num_key_value_heads", n_heads),
        vocab_size=config["vocab_size"],
        multiple_of=intermediate,
        ffn_dim_multiplier=intermediate / base_hidden,
        norm_eps=config.get("rms_norm_eps", 1e-6),
        rope_theta=rope["rope_theta"],
        rope_scaling_args=scaling,
        max_seq_len=options.max_seq_len,
        attn_type=options.attn_type,
    )


class LlamaTeacher(Transformer):
    """torchtitan Transformer cut after the requested block; the LM head is used only by `logits`."""

    def __init__(self, args: TransformerModelArgs, options: TeacherOptions, tie_embeddings: bool):
        super().__init__(args)
        cut_to_layer(self, options.layer, args.n_layers, tie_embeddings)
        self.hidden_size, self.vocab_size, self.n_layers = args.dim, args.vocab_size, args.n_layers
        self.max_seq_len = None

    def forward(self, tokens: torch.Tensor, attention_masks: Any = None) -> torch.Tensor:
        h = self.tok_embeddings(tokens)
        for layer in self.layers.values():
            h = layer(h, self.freqs_cis, attention_masks=attention_masks)
        return self.norm(h) if self.norm is not None else h

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return lm_head_logits(self, hidden)

    def init_buffers(self) -> None:
        self.freqs_cis = self._precompute_freqs_cis().to(self.tok_embeddings.weight.device)


def build_llama_teacher(config: dict[str, Any], options: TeacherOptions) -> LlamaTeacher:
    return LlamaTeacher(llama_args(config, options), options, tied_embeddings(config))


def convert_llama_state_dict(config: dict[str, Any], hf_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    hf_state_dict = {("model." + k if not k.startswith(("model.", "lm_head.")) else k): v
                     for k, v in strip_prefix(hf_state_dict, ("base_model.",)).items()}
    if tied_embeddings(config):
        hf_state_dict.pop("lm_head.weight", None)
    adapter = Llama3StateDictAdapter(llama_args(config, TeacherOptions()), None)
    return adapter.from_hf(hf_state_dict)


register_teacher("llama", TeacherArchitecture(build=build_llama_teacher, convert_state_dict=convert_llama_state_dict))
