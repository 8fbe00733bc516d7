"""OPT teachers in plain torch, equal to transformers' OPTForCausalLM.

The final hidden state (teacher_layer = -1) is what transformers returns as `last_hidden_state`, which is also
`hidden_states[-1]` of `OPTForCausalLM(..., output_hidden_states=True)`: the last block's output, then the final
layer norm (pre-LN models only), then `project_out` when word_embed_proj_dim != hidden_size. So for OPT-350m
(post-LN, 1024 -> 512) it is the 512-wide projected state the LM head reads, and `hidden_size` here is the width
of what `forward` returns (word_embed_proj_dim at layer -1), not config.json's hidden_size.
"""

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import LETConfigError
from .checkpoint import strip_prefix
from .modules import activation, attend, inner_attention, lm_head_logits
from .registry import TeacherArchitecture, TeacherOptions, register_teacher, resolve_layer

# OPTLearnedPositionalEmbedding: position p reads row p + 2 (a fairseq padding_idx leftover).
_POSITION_OFFSET = 2


@dataclass
class OPTArgs:
    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    vocab_size: int
    embed_dim: int
    """word_embed_proj_dim: width of the token embedding and the LM head; project_in/out when != dim."""
    max_positions: int
    activation: str
    pre_norm: bool
    final_norm: bool
    bias: bool
    norm_affine: bool
    tie_embeddings: bool

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> "OPTArgs":
        dim, n_heads = config["hidden_size"], config["num_attention_heads"]
        if dim % n_heads:
            raise LETConfigError(f"teacher config hidden_size={dim} is not divisible by num_attention_heads={n_heads}")
        activation(config.get("activation_function", "relu"), "activation_function")
        pre_norm = config.get("do_layer_norm_before", True)
        return cls(
            dim=dim,
            n_layers=config["num_hidden_layers"],
            n_heads=n_heads,
            ffn_dim=config["ffn_dim"],
            vocab_size=config["vocab_size"],
            embed_dim=config.get("word_embed_proj_dim") or dim,
            max_positions=config["max_position_embeddings"],
            activation=config.get("activation_function", "relu"),
            pre_norm=pre_norm,
            final_norm=pre_norm and not config.get("_remove_final_layer_norm", False),
            bias=config.get("enable_bias", True),
            norm_affine=config.get("layer_norm_elementwise_affine", True),
            tie_embeddings=bool(config.get("tie_word_embeddings", True)),
        )


class Attention(nn.Module):
    def __init__(self, args: OPTArgs, attn_type: str):
        super().__init__()
        self.n_heads, self.head_dim = args.n_heads, args.dim // args.n_heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(args.dim, args.dim, bias=args.bias) for _ in range(4))
        self.inner_attention = inner_attention(attn_type)

    def forward(self, x: torch.Tensor, attention_masks: Any) -> torch.Tensor:
        bs, seqlen, _ = x.shape
        # OPT scales q before q @ k^T (not inside the softmax); kept for bit-level closeness in bf16.
        q = self.wq(x) * self.head_dim**-0.5
        q, k, v = (t.view(bs, seqlen, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, self.wk(x), self.wv(x)))
        out = attend(self.inner_attention, q, k, v, attention_masks, scale=1.0)
        return self.wo(out.transpose(1, 2).reshape(bs, seqlen, -1))


class Block(nn.Module):
    """Pre-LN (125m, 1.3b, ...) or post-LN (350m) residual block with a 2-layer MLP."""

    def __init__(self, args: OPTArgs, attn_type: str):
        super().__init__()
        self.attention = Attention(args, attn_type)
        self.attention_norm = nn.LayerNorm(args.dim, elementwise_affine=args.norm_affine)
        self.ffn_norm = nn.LayerNorm(args.dim, elementwise_affine=args.norm_affine)
        self.w1 = nn.Linear(args.dim, args.ffn_dim, bias=args.bias)
        self.w2 = nn.Linear(args.ffn_dim, args.dim, bias=args.bias)
        self.act, self.pre_norm = activation(args.activation, "activation_function"), args.pre_norm

    def forward(self, x: torch.Tensor, attention_masks: Any) -> torch.Tensor:
        if self.pre_norm:
            h = x + self.attention(self.attention_norm(x), attention_masks)
            return h + self.w2(self.act(self.w1(self.ffn_norm(h))))
        h = self.attention_norm(x + self.attention(x, attention_masks))
        return self.ffn_norm(h + self.w2(self.act(self.w1(h))))


class OPTTeacher(nn.Module):
    """OPT cut after the requested block; the LM head (tied to the embedding by default) is used only by `logits`."""

    def __init__(self, args: OPTArgs, options: TeacherOptions):
        super().__init__()
        last = resolve_layer(options.layer, args.n_layers)
        final = options.layer == -1
        projected = args.embed_dim != args.dim
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.embed_dim)
        self.pos_embeddings = nn.Embedding(args.max_positions + _POSITION_OFFSET, args.dim)
        self.project_in = nn.Linear(args.embed_dim, args.dim, bias=False) if projected else None
        self.layers = nn.ModuleDict({str(i): Block(args, options.attn_type) for i in range(last + 1)})
        self.norm = nn.LayerNorm(args.dim, elementwise_affine=args.norm_affine) if final and args.final_norm else None
        self.project_out = nn.Linear(args.dim, args.embed_dim, bias=False) if final and projected else None
        self.output = None if args.tie_embeddings else nn.Linear(args.embed_dim, args.vocab_size, bias=False)
        self.hidden_size = args.embed_dim if final else args.dim
        self.vocab_size, self.n_layers, self.max_seq_len = args.vocab_size, args.n_layers, args.max_positions

    def forward(self, tokens: torch.Tensor, attention_masks: Any = None) -> torch.Tensor:
        h = self.tok_embeddings(tokens)
        if self.project_in is not None:
            h = self.project_in(h)
        # HF: cumsum(attention_mask) - 1 + 2, i.e. arange(S) + 2 for our unpadded rows.
        positions = torch.arange(_POSITION_OFFSET, tokens.shape[1] + _POSITION_OFFSET, device=tokens.device)
        h = h + self.pos_embeddings(positions)
        for layer in self.layers.values():
            h = layer(h, attention_masks)
        if self.norm is not None:
            h = self.norm(h)
        return self.project_out(h) if self.project_out is not None else h

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return lm_head_logits(self, hidden)

    def init_buffers(self) -> None:
        """Learned positions only: nothing to recompute."""


def build_opt_teacher(config: dict[str, Any], options: TeacherOptions) -> OPTTeacher:
    return OPTTeacher(OPTArgs.from_hf(config), options)


_KEYS = {
    "embed_tokens": "tok_embeddings",
    "embed_positions": "pos_embeddings",
    "project_in": "project_in",
    "project_out": "project_out",
    "final_layer_norm": "norm",
    "lm_head": "output",
}
_LAYER_KEYS = {
    "self_attn.q_proj": "attention.wq",
    "self_attn.k_proj": "attention.wk",
    "self_attn.v_proj": "attention.wv",
    "self_attn.out_proj": "attention.wo",
    "self_attn_layer_norm": "attention_norm",
    "final_layer_norm": "ffn_norm",
    "fc1": "w1",
    "fc2": "w2",
}


def convert_opt_state_dict(config: dict[str, Any], hf_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF keys (`model.decoder.`, `decoder.` or bare) -> this module; a tied checkpoint's lm_head is dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in strip_prefix(hf_state_dict, ("model.decoder.", "decoder.", "model.")).items():
        module, param = key.rsplit(".", 1)
        if module.startswith("layers."):
            _, idx, rest = module.split(".", 2)
            if rest in _LAYER_KEYS:
                out[f"layers.{idx}.{_LAYER_KEYS[rest]}.{param}"] = value
        elif module in _KEYS:
            out[f"{_KEYS[module]}.{param}"] = value
    if OPTArgs.from_hf(config).tie_embeddings:
        out.pop("output.weight", None)
    return out


def _output_width(config: dict[str, Any], layer: int) -> int:
    """The final state passes project_out (word_embed_proj_dim wide); block outputs are hidden_size wide."""
    return (config.get("word_embed_proj_dim") or config["hidden_size"]) if layer == -1 else config["hidden_size"]


register_teacher(
    "opt",
    TeacherArchitecture(
        build=build_opt_teacher,
        convert_state_dict=convert_opt_state_dict,
        output_width=_output_width,
        max_positions=lambda config: config["max_position_embeddings"],
    ),
)
