"""GPT-NeoX teachers (Pythia) in plain torch, equal to transformers' GPTNeoXForCausalLM.

transformers is never imported: the teacher must compile and run in bf16 beside a torchtitan student, with the
student's attention kernel (sdpa, or flex with its BlockMask). `inner_attention`/`attend`/`activation` are shared
with opt.py.
"""

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import LETConfigError
from .checkpoint import rope_config, strip_prefix
from .modules import activation, attend, inner_attention, lm_head_logits
from .registry import TeacherArchitecture, TeacherOptions, register_teacher, resolve_layer


# transformers' ACT2FN names; its hand-written gelu_new/gelu_fast are the tanh approximation F.gelu also has.
@dataclass
class GPTNeoXArgs:
    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    vocab_size: int
    norm_eps: float
    rotary_dim: int
    """Leading dims of each head that get RoPE (rotary_pct / partial_rotary_factor of head_dim)."""
    rope_theta: float
    hidden_act: str
    parallel_residual: bool
    attention_bias: bool
    tie_embeddings: bool

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> "GPTNeoXArgs":
        """Reads transformers 4.x (rotary_pct, rotary_emb_base) and 5.x (rope_parameters) config.json alike."""
        rope = rope_config({**config, "rope_theta": config.get("rope_theta", config.get("rotary_emb_base", 10000.0))})
        if rope["rope_type"] != "default":
            raise LETConfigError(f"teacher config rope_scaling/rope_parameters rope_type={rope['rope_type']!r}: "
                               "only 'default' for gpt_neox")
        dim, n_heads = config["hidden_size"], config["num_attention_heads"]
        head_dim = dim // n_heads
        if config.get("head_dim", head_dim) != head_dim:
            raise LETConfigError(f"teacher config head_dim={config['head_dim']} != hidden_size/num_attention_heads")
        activation(config.get("hidden_act", "gelu"), "hidden_act")
        return cls(
            dim=dim,
            n_layers=config["num_hidden_layers"],
            n_heads=n_heads,
            ffn_dim=config["intermediate_size"],
            vocab_size=config["vocab_size"],
            norm_eps=config.get("layer_norm_eps", 1e-5),
            rotary_dim=int(head_dim * rope.get("partial_rotary_factor", config.get("rotary_pct", 0.25))),
            rope_theta=float(rope["rope_theta"]),
            hidden_act=config.get("hidden_act", "gelu"),
            parallel_residual=config.get("use_parallel_residual", True),
            attention_bias=config.get("attention_bias", True),
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
        )


def apply_partial_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """HF's rotate_half RoPE on the first rotary_dim dims of each head ([B, H, S, D]); the rest pass through."""
    rot, rest = x[..., : cos.shape[-1]], x[..., cos.shape[-1]:]
    x1, x2 = rot.chunk(2, dim=-1)
    rot = rot * cos + torch.cat((-x2, x1), dim=-1) * sin
    return torch.cat((rot, rest), dim=-1)


class Attention(nn.Module):
    def __init__(self, args: GPTNeoXArgs, attn_type: str):
        super().__init__()
        self.n_heads = args.n_heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(args.dim, args.dim, bias=args.attention_bias) for _ in range(4))
        self.inner_attention = inner_attention(attn_type)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attention_masks: Any) -> torch.Tensor:
        bs, seqlen, _ = x.shape
        q, k, v = (w(x).view(bs, seqlen, self.n_heads, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        q, k = apply_partial_rope(q, cos, sin), apply_partial_rope(k, cos, sin)
        out = attend(self.inner_attention, q, k, v, attention_masks)
        return self.wo(out.transpose(1, 2).reshape(bs, seqlen, -1))


class FeedForward(nn.Module):
    def __init__(self, args: GPTNeoXArgs):
        super().__init__()
        self.w1, self.w2 = nn.Linear(args.dim, args.ffn_dim), nn.Linear(args.ffn_dim, args.dim)
        self.act = activation(args.hidden_act, "hidden_act")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.act(self.w1(x)))


class Block(nn.Module):
    def __init__(self, args: GPTNeoXArgs, attn_type: str):
        super().__init__()
        self.attention_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = nn.LayerNorm(args.dim, eps=args.norm_eps)
        self.attention, self.feed_forward = Attention(args, attn_type), FeedForward(args)
        self.parallel_residual = args.parallel_residual

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attention_masks: Any) -> torch.Tensor:
        attn = self.attention(self.attention_norm(x), cos, sin, attention_masks)
        if self.parallel_residual:  # Pythia: x + attn(ln1(x)) + mlp(ln2(x))
            return self.feed_forward(self.ffn_norm(x)) + attn + x
        h = x + attn
        return self.feed_forward(self.ffn_norm(h)) + h


class GPTNeoXTeacher(nn.Module):
    """GPT-NeoX cut after the requested block; `embed_out` (the untied LM head) is used only by `logits`."""

    def __init__(self, args: GPTNeoXArgs, options: TeacherOptions):
        super().__init__()
        last = resolve_layer(options.layer, args.n_layers)
        self.args, self.rope_len = args, options.max_seq_len
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleDict({str(i): Block(args, options.attn_type) for i in range(last + 1)})
        self.norm = nn.LayerNorm(args.dim, eps=args.norm_eps) if options.layer == -1 else None
        self.output = None if args.tie_embeddings else nn.Linear(args.dim, args.vocab_size, bias=False)
        self.register_buffer("rope_cos", torch.empty(self.rope_len, args.rotary_dim), persistent=False)
        self.register_buffer("rope_sin", torch.empty(self.rope_len, args.rotary_dim), persistent=False)
        self.hidden_size, self.vocab_size, self.n_layers = args.dim, args.vocab_size, args.n_layers
        self.max_seq_len = None

    def forward(self, tokens: torch.Tensor, attention_masks: Any = None) -> torch.Tensor:
        h = self.tok_embeddings(tokens)
        seqlen = tokens.shape[1]
        cos, sin = self.rope_cos[:seqlen].to(h.dtype), self.rope_sin[:seqlen].to(h.dtype)
        for layer in self.layers.values():
            h = layer(h, cos, sin, attention_masks)
        return self.norm(h) if self.norm is not None else h

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return lm_head_logits(self, hidden)

    def init_buffers(self) -> None:
        """RoPE tables as HF computes them (fp32 angles, cat(freqs, freqs) for rotate_half)."""
        device, dim = self.tok_embeddings.weight.device, self.args.rotary_dim
        inv_freq = 1.0 / (self.args.rope_theta ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
        angles = torch.outer(torch.arange(self.rope_len, device=device, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.rope_cos, self.rope_sin = angles.cos(), angles.sin()


def build_gpt_neox_teacher(config: dict[str, Any], options: TeacherOptions) -> GPTNeoXTeacher:
    return GPTNeoXTeacher(GPTNeoXArgs.from_hf(config), options)


_LAYER_KEYS = {
    "input_layernorm": "attention_norm",
    "post_attention_layernorm": "ffn_norm",
    "attention.dense": "attention.wo",
    "mlp.dense_h_to_4h": "feed_forward.w1",
    "mlp.dense_4h_to_h": "feed_forward.w2",
}


def convert_gpt_neox_state_dict(
    config: dict[str, Any], hf_state_dict: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """HF keys (with or without `gpt_neox.`) -> this module; the fused qkv is split per head.

    HF's `query_key_value` output is laid out per head as [q_h, k_h, v_h] (view(..., H, 3 * head_dim) then
    chunk(3)), so rows are de-interleaved into separate wq/wk/wv. Unknown keys (old `attention.bias`/`masked_bias`
    /`rotary_emb.inv_freq` buffers) are left for load_teacher's filter.
    """
    args = GPTNeoXArgs.from_hf(config)
    head_dim = args.dim // args.n_heads
    out: dict[str, torch.Tensor] = {}
    for key, value in strip_prefix(hf_state_dict, ("gpt_neox.",)).items():
        if key.startswith("layers."):
            _, idx, rest = key.split(".", 2)
            module, param = rest.rsplit(".", 1)
            if module == "attention.query_key_value":
                qkv = value.view(args.n_heads, 3, head_dim, *value.shape[1:])
                for j, name in enumerate(("wq", "wk", "wv")):
                    out[f"layers.{idx}.attention.{name}.{param}"] = qkv[:, j].reshape(args.dim, *value.shape[1:])
            elif module in _LAYER_KEYS:
                out[f"layers.{idx}.{_LAYER_KEYS[module]}.{param}"] = value
        elif key.startswith("embed_in."):
            out["tok_embeddings.weight"] = value
        elif key.startswith("final_layer_norm."):
            out["norm." + key.rsplit(".", 1)[1]] = value
        elif key in ("embed_out.weight", "lm_head.weight"):  # 4.x name / transformers 5 in-memory name
            out["output.weight"] = value
    return out


register_teacher(
    "gpt_neox", TeacherArchitecture(build=build_gpt_neox_teacher, convert_state_dict=convert_gpt_neox_state_dict)
)
