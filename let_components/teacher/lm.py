"""The teacher's next-token prediction of a micro-batch: its start-up sanity check, and what the caught-up stop rule
compares with the student's. Computed only when asked: the teacher's LM head can cost as much as a student step.

Logits are computed a chunk of sequences at a time (`LOGITS_PER_CHUNK`): a whole batch at once is cheap for a small
vocabulary but not for a large one (Gemma 3's 262,144 rows: 8 x 256 tokens are 2 GiB of float32 logits).
"""

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.tools.logging import logger

from ..tokens.per_byte import bits_per_byte, lm_loss_sums

LOGITS_PER_CHUNK = 1 << 26
"""Logits held at once (256 MiB in float32): a small vocabulary's whole batch, one sequence of a 262k one."""


@dataclass
class TeacherLM:
    logits: Callable[[slice], torch.Tensor]
    """rows -> the teacher's logits of those sequences."""
    labels: torch.Tensor
    """[B, T] the teacher's own next tokens (IGNORE_INDEX where none)."""
    vocab_size: int
    """The logits' width, to size the chunks before computing any."""
    label_bytes: torch.Tensor | None = None
    """[B, T] the bytes of text each label stands for, where the data pipeline read them off the text (the byte
    alignment); None: the teacher tokenizer's per-id table says them."""

    def chunks(self, rows: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """(logits, labels, label bytes) of the first `rows` sequences (None: all), LOGITS_PER_CHUNK logits at a
        time."""
        rows = self.labels.shape[0] if rows is None else min(rows, self.labels.shape[0])
        per_chunk = max(1, LOGITS_PER_CHUNK // (self.labels.shape[1] * self.vocab_size))
        for first in range(0, rows, per_chunk):
            part = slice(first, min(rows, first + per_chunk))
            label_bytes = self.label_bytes[part] if self.label_bytes is not None else None
            yield self.logits(part), self.labels[part], label_bytes

    def text_sums(self, rows: int, byte_lengths: torch.Tensor | None) -> torch.Tensor:
        """lm_loss_sums (text nats, bytes, text tokens) over the first `rows` sequences."""
        sums = [lm_loss_sums(logits, labels, _on(byte_lengths, logits), _on(label_bytes, logits))
                for logits, labels, label_bytes in self.chunks(rows)]
        return torch.stack(sums).sum(0)

    def sanity_check(self, byte_lengths: torch.Tensor | None, teacher_path: str) -> torch.Tensor:
        """Log the teacher's LM loss on this batch per token and per byte of text, so a wrong checkpoint or
        tokenizer shows at once; returns the loss for the non-finite guard. byte_lengths: text_byte_lengths of
        the teacher's tokenizer (None: its tokens' bytes are unknown, per token only)."""
        ce, text = [], []
        measured = byte_lengths is not None or self.label_bytes is not None
        for logits, labels, label_bytes in self.chunks():
            ce.append(F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX,
                                      reduction="sum"))
            if measured:
                text.append(lm_loss_sums(logits, labels, _on(byte_lengths, logits), _on(label_bytes, logits)))
        loss_tensor = torch.stack(ce).sum() / (self.labels != IGNORE_INDEX).sum().to(ce[0].device)
        loss, uniform = loss_tensor.item(), math.log(self.vocab_size)
        per_byte = "n/a (its tokenizer does not say the bytes of its tokens)"
        if measured:
            nats, n_bytes, _ = torch.stack(text).sum(0).tolist()
            per_byte = f"{bits_per_byte(nats, n_bytes):.3f} bits ({nats / n_bytes:.3f} nats)"
        logger.info(
            f"[LET] teacher sanity check: LM loss {loss:.3f} nats per token, {per_byte} per byte of text on the first "
            f"batch (uniform guessing: {uniform:.3f} nats per token)"
        )
        if math.isfinite(loss) and not loss < uniform:
            logger.warning(
                f"[LET] the teacher at let.teacher_path='{teacher_path}' predicts the first batch no better than "
                "chance: check the checkpoint and the tokenizer (model.hf_assets_path, if set)"
            )
        return loss_tensor


def _on(tensor: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    return tensor.to(like.device) if tensor is not None else None
