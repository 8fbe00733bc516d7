"""Teacher architectures by Hugging Face `model_type`.

A new architecture is one module that calls `register_teacher` at import; the trainer never changes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ..config import LETConfigError
from ..registry import Registry


class TeacherModel(Protocol):
    """What LET needs from a teacher: hidden states in, never gradients out."""

    hidden_size: int
    vocab_size: int
    n_layers: int
    max_seq_len: int | None
    """Longest sequence the weights support (learned positions); None when RoPE has no hard limit."""

    def __call__(self, tokens: torch.Tensor, attention_masks: Any = None) -> torch.Tensor:
        """[B, S] token ids -> [B, S, hidden_size] hidden state at the requested layer."""
        ...

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM head on the final hidden state: the start-up sanity check, and every micro-batch of signal = "logits"."""
        ...

    def init_buffers(self) -> None:
        """Recompute non-persistent buffers (RoPE tables) after `to_empty`."""
        ...


@dataclass(frozen=True)
class TeacherArchitecture:
    """How one HF architecture becomes a frozen teacher."""

    build: Callable[[dict[str, Any], "TeacherOptions"], nn.Module]
    """Builds the module (called on the meta device) from config.json."""
    convert_state_dict: Callable[[dict[str, Any], dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    """Maps HF safetensors keys/layouts to the module's state dict."""
    output_width: Callable[[dict[str, Any], int], int] = lambda config, layer: config["hidden_size"]
    """Width of the state returned for `teacher_layer` (OPT-350m's final state is word_embed_proj_dim wide)."""
    max_positions: Callable[[dict[str, Any]], int | None] = lambda config: None
    """Longest sequence the weights support (learned positions), None when there is no hard limit."""
    load: Callable[..., nn.Module] | None = None
    """(path, config, options, device, dtype) -> the loaded module, for a backend that reads the folder itself
    (transformers); None: built on the meta device and filled from the safetensors by `convert_state_dict`."""


@dataclass(frozen=True)
class TeacherOptions:
    """Run-time choices that shape the teacher module."""

    layer: int = -1
    """-1: final hidden state after the final norm; i >= 0: output of block i."""
    max_seq_len: int = 2048
    """Positions to precompute (the student's training.seq_len)."""
    attn_type: str = "sdpa"
    """The student's attention kernel, so a student's block-causal mask applies to the teacher too."""
    backend: str = "auto"
    """let.teacher_backend: native (this package's module for the model_type), transformers, or auto (native where
    there is one)."""


TEACHER_ARCHITECTURES: Registry[TeacherArchitecture] = Registry("teacher model_type")
"""config.json's model_type -> its native architecture (every other model_type is the transformers backend's)."""


def register_teacher(model_type: str, architecture: TeacherArchitecture) -> None:
    TEACHER_ARCHITECTURES.register(model_type, architecture)


def resolve_layer(layer: int, n_layers: int) -> int:
    """Index of the last block to run; checks `let.teacher_layer` against the teacher's depth."""
    if not -1 <= layer < n_layers:
        raise LETConfigError(
            f"let.teacher_layer={layer}: the teacher has {n_layers} blocks; use -1 (final, after the "
            f"final norm) or 0..{n_layers - 1}"
        )
    return n_layers - 1 if layer == -1 else layer
