"""The `hf` student initialisation (`[student] init = "hf"`): Hugging Face / Megatron-LM GPT style.

Why it exists: torchtitan's llama3 and qwen3 `init_weights` draw the token embeddings from N(0, 1) while every block
weight starts near std 0.02, so an early block's output is almost the raw embedding row, and its direction - what
the LET alignment term pulls on - moves only as fast as AdamW moves the embeddings. A paper-style student (Hugging
Face `initializer_range`, Megatron-LM's `init_method_std`) starts with embeddings at the blocks' scale.

The scheme, per parameter:
- token embeddings and every linear (q, k, v, SwiGLU gate and up, the untied LM head): N(0, 0.02), as
  transformers' `_init_weights` and Megatron-LM's `init_method_normal`;
- the residual output projections of each block (attention `wo`, feed-forward `w2`): N(0, 0.02 / sqrt(2 * L)),
  Megatron-LM's `scaled_init_method_normal` (GPT-2's scheme too): 2L branches add to the residual stream, so its
  variance at the last block stays that of one unscaled branch. transformers' Llama omits this scaling, but it
  only ever trains from pretrained weights; pretraining codebases (Megatron-LM, GPT-NeoX, nanoGPT) keep it;
- norms stay at torchtitan's reset (ones); buffers (RoPE tables) are torchtitan's.

Plain normal (not truncated), as both references draw it. Applied after the family's own init_weights, which
computes the buffers, so the random draws are a pure function of the seed for baseline and LET alike; the LET
projection is initialised after this (spec.py), so it does not shift the draws of the shared weights.
"""

import math

from torch import nn

from ..config import LETConfigError

INITIALIZER_RANGE = 0.02
"""transformers' `initializer_range` default and Megatron-LM's `init_method_std`."""

RESIDUAL_OUTPUTS = ("attention.wo", "feed_forward.w2")
"""Module names (suffixes) of the projections that write into the residual stream, in torchtitan's llama3/qwen3."""


def residual_output_std(n_layers: int, std: float = INITIALIZER_RANGE) -> float:
    """Megatron-LM's scaled init: std / sqrt(2 * n_layers)."""
    return std / math.sqrt(2 * n_layers)


def hf_init_(model: nn.Module, n_layers: int, std: float = INITIALIZER_RANGE) -> None:
    """Re-draw the embeddings and linears of a llama3/qwen3-style model in place (see the module docstring).

    Every parameter must be covered by a rule: one that is not (a family this was not written for) is an error,
    never left at torchtitan's init.
    """
    covered: set[str] = set()
    for name, module in model.named_modules():
        if name.startswith("let_projection"):
            continue
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.Linear):
            scaled = name.endswith(RESIDUAL_OUTPUTS)
            nn.init.normal_(module.weight, mean=0.0, std=residual_output_std(n_layers, std) if scaled else std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif not isinstance(module, nn.RMSNorm):
            continue
        covered.update(f"{name}.{param}" if name else param for param, _ in module.named_parameters(recurse=False))
    uncovered = [
        name for name, _ in model.named_parameters() if name not in covered and not name.startswith("let_projection")
    ]
    if uncovered:
        raise LETConfigError(
            f"student.init='hf': no hf rule for {', '.join(uncovered[:3])} of {type(model).__name__}; "
            "use 'torchtitan'"
        )
