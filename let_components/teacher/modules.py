"""Building blocks shared by the hand-written teachers (GPT-NeoX, OPT), and the LM head every teacher uses (for the
start-up sanity check, and on every micro-batch of signal = "logits")."""

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.flex_attention import BlockMask
from torchtitan.models.attention import FlexAttentionWrapper, ScaledDotProductAttentionWrapper

from ..config import LETConfigError
from .registry import resolve_layer

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "gelu_new": partial(F.gelu, approximate="tanh"),
    "gelu_fast": partial(F.gelu, approximate="tanh"),
    "gelu_pytorch_tanh": partial(F.gelu, approximate="tanh"),
}


def activation(name: str, key: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in _ACTIVATIONS:
        raise LETConfigError(f"teacher config {key}={name!r}: supported are {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def inner_attention(attn_type: str) -> nn.Module:
    """torchtitan's kernel wrapper for the student's attn_type, chosen as llama3's Attention chooses it."""
    match attn_type:
        case "sdpa":
            return ScaledDotProductAttentionWrapper()
        case "flex":
            return FlexAttentionWrapper()
    raise LETConfigError(
        f"model.flavor: the student's attn_type={attn_type!r} has no kernel in this teacher architecture (GPT-NeoX "
        "and OPT teachers support 'sdpa' and 'flex'); use a flavor with one of those, or a Llama/Qwen teacher"
    )


def attend(inner: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attention_masks: Any,
           scale: float | None = None) -> torch.Tensor:
    """Causal attention on [B, H, S, D]: sdpa's is_causal, or flex with the student's (block-causal) BlockMask."""
    if isinstance(inner, FlexAttentionWrapper):
        assert isinstance(attention_masks, BlockMask), attention_masks
        return inner(q, k, v, block_mask=attention_masks, scale=scale)
    assert attention_masks is None
    return inner(q, k, v, scale=scale)


def lm_head_logits(teacher: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Logits off the teacher's `output` head, or off its embedding when the checkpoint ties them (no lm_head)."""
    weight = teacher.output.weight if teacher.output is not None else teacher.tok_embeddings.weight
    return hidden @ weight.t()


def tied_embeddings(config: dict[str, Any]) -> bool:
    """Tied checkpoints (SmolLM, Llama-3.2, small Qwens) ship no lm_head: logits come off the embedding."""
    return bool(config.get("tie_word_embeddings", False))


def cut_to_layer(teacher: nn.Module, layer: int, n_layers: int, tied: bool) -> None:
    """Make a torchtitan decoder a teacher in place: drop the blocks after the requested `layer` (-1: all kept),
    the final norm when an inner block is read, and the LM head of tied checkpoints."""
    for layer_id in range(resolve_layer(layer, n_layers) + 1, n_layers):
        del teacher.layers[str(layer_id)]
    if layer != -1:
        teacher.norm = None
    if tied:
        teacher.output = None
