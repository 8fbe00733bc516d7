"""The teacher's next-token prediction of a micro-batch: its start-up sanity check, and what the caught-up stop rule
compares with the student's. Computed only when asked: the teacher's LM head can cost as much as a student step."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.tools.logging import logger

from .token_alignment import bits_per_byte, lm_loss_sums


@dataclass
class TeacherLM:
    logits: Callable[[int | None], torch.Tensor]
    """rows -> the teacher's logits of the first `rows` sequences (None: all)."""
    labels: torch.Tensor
    """[B, T] the teacher's own next tokens (IGNORE_INDEX where none)."""

    def sanity_check(self, byte_lengths: torch.Tensor | None, teacher_path: str) -> torch.Tensor:
        """Log the teacher's LM loss on this batch per token and per byte of text, so a wrong checkpoint or
        tokenizer shows at once; returns the loss for the non-finite guard. byte_lengths: text_byte_lengths of
        the teacher's tokenizer (None: not byte-level, per token only)."""
        logits = self.logits(None)
        loss_tensor = F.cross_entropy(logits.float().flatten(0, 1), self.labels.flatten(), ignore_index=IGNORE_INDEX)
        loss, uniform = loss_tensor.item(), math.log(logits.shape[-1])
        per_byte = "n/a (not a byte-level tokenizer)"
        if byte_lengths is not None:
            nats, n_bytes, _ = lm_loss_sums(logits, self.labels, byte_lengths.to(logits.device)).tolist()
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
