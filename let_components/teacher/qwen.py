"""Qwen2 / Qwen2.5 and Qwen3 teachers built from torchtitan's own qwen3 modules.

torchtitan's Qwen3Model already has what both need: rotate-half RoPE, GQA, an explicit head_dim and optional q/k
RMSNorm. Qwen3 is it as is (q/k norm on); Qwen2 turns q/k norm off and gives q/k/v projections a bias. The HF
mapping is torchtitan's Qwen3StateDictAdapter, plus the Qwen2 bias keys.
"""

from typing import Any

import torch
from torch import nn
from torchtitan.models.qwen3.model.args import Qwen3ModelArgs
from torchtitan.models.qwen3.model.model import Qwen3Model
from torchtitan.models.qwen3.model.state_dict_adapter import Qwen3StateDictAdapter

from ..config import LETConfigError
from .checkpoint import rope_config, strip_prefix
from .modules import cut_to_layer, lm_head_logits, tied_embeddings
from .registry import TeacherArchitecture, TeacherOptions, register_teacher


def _check_variant(config: dict[str, Any], model_type: str) -> None:
    """Refuse the config flags that would change the math this module computes, naming the flag."""
    if config.get("use_sliding_window") or "sliding_attention" in (config.get("layer_types") or ()):
        # real Qwen2.5 configs carry sliding_window/max_window_layers with use_sliding_window = false: that is fine
        raise LETConfigError(
            f"teacher config use_sliding_window/layer_types: sliding-window attention is on in this {model_type} "
            "checkpoint; only full attention is supported"
        )
    if config.get("hidden_act", "silu") != "silu":
        raise LETConfigError(f"teacher config hidden_act={config['hidden_act']!r}: only 'silu' for {model_type}")
    if model_type == "qwen3" and config.get("attention_bias"):
        raise LETConfigError("teacher config attention_bias=true: Qwen3 with attention biases is not supported")
    rope = rope_config(config)
    if rope["rope_type"] != "default":
        raise LETConfigError(f"teacher config rope_type={rope['rope_type']!r}: only 'default' for {model_type}")


def qwen_args(config: dict[str, Any], options: TeacherOptions, model_type: str) -> Qwen3ModelArgs:
    """torchtitan qwen3 args equal to an HF Qwen2Config / Qwen3Config (4.x or 5.x config.json)."""
    _check_variant(config, model_type)
    dim, n_heads = config["hidden_size"], config["num_attention_heads"]
    return Qwen3ModelArgs(
        dim=dim,
        n_layers=config["num_hidden_layers"],
        n_heads=n_heads,
        n_kv_heads=config.get("num_key_value_heads", n_heads),
        vocab_size=config["vocab_size"],
        head_dim=config.get("head_dim") or dim // n_heads,
        hidden_dim=config["intermediate_size"],
        norm_eps=config.get("rms_norm_eps", 1e-6),
        rope_theta=rope_config(config)["rope_theta"],
        qk_norm=model_type == "qwen3",
        max_seq_len=options.max_seq_len,
        attn_type=options.attn_type,
        # tying is handled by reading logits off the embedding (tied checkpoints ship no lm_head)
        enable_weight_tying=False,
    )


class QwenTeacher(Qwen3Model):
    """torchtitan Qwen3Model cut after the requested block; the LM head is used only by `logits`."""

    def __init__(self, args: Qwen3ModelArgs, options: TeacherOptions, tie_embeddings: bool, qkv_bias: bool):
        super().__init__(args)
        if qkv_bias:  # Qwen2: q/k/v projections have a bias, the output projection has none
            for block in self.layers.values():
                for name in ("wq", "wk", "wv"):
                    linear = getattr(block.attention, name)
                    setattr(block.attention, name, nn.Linear(linear.in_features, linear.out_features, bias=True))
        cut_to_layer(self, options.layer, args.n_layers, tie_embeddings)
        self.hidden_size, self.n_layers, self.max_seq_len = args.dim, args.n_layers, None

    def forward(self, tokens: torch.Tensor, attention_masks: Any = None) -> torch.Tensor:
        h = self.tok_embeddings(tokens)
        for layer in self.layers.values():
            h = layer(h, self.rope_cache, attention_masks)
        return self.norm(h) if self.norm is not None else h

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return lm_head_logits(self, hidden)

    def init_buffers(self) -> None:
        self.rope_cache = self._precompute_rope_cache().to(self.tok_embeddings.weight.device)


class QwenStateDictAdapter(Qwen3StateDictAdapter):
    """torchtitan's qwen3 HF mapping plus Qwen2's q/k/v biases."""

    def __init__(self, model_args: Qwen3ModelArgs, hf_assets_path: str | None = None):
        super().__init__(model_args, hf_assets_path)
        for hf, ours in (("q_proj", "wq"), ("k_proj", "wk"), ("v_proj", "wv")):
            self.from_hf_map[f"model.layers.{{}}.self_attn.{hf}.bias"] = f"layers.{{}}.attention.{ours}.bias"


def _builder(model_type: str):
    def build(config: dict[str, Any], options: TeacherOptions) -> QwenTeacher:
        args = qwen_args(config, options, model_type)
        return QwenTeacher(args, options, tied_embeddings(config), qkv_bias=model_type == "qwen2")

    return build


def _converter(model_type: str):
    def convert(config: dict[str, Any], hf_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hf_state_dict = {("model." + k if not k.startswith(("model.", "lm_head.")) else k): v
                         for k, v in strip_prefix(hf_state_dict, ("base_model.",)).items()}
        if tied_embeddings(config):
            hf_state_dict.pop("lm_head.weight", None)
        return QwenStateDictAdapter(qwen_args(config, TeacherOptions(), model_type)).from_hf(hf_state_dict)

    return convert


for _model_type in ("qwen2", "qwen3"):
    register_teacher(
        _model_type, TeacherArchitecture(build=_builder(_model_type), convert_state_dict=_converter(_model_type))
    )
