"""How teacher positions map to student positions (`let.token_alignment`), chosen once at start-up like the term.

`SameTokens` (the paper's setting): the student trains in the teacher's tokenizer, so teacher position j is student
position j, the teacher reads the student's own input ids and the term counts the positions CE counts.
`BytesAligned`: the student keeps its own tokenizer; the dataset (aligned_data.py) adds the teacher's own token ids
of the same text and, per student position, the teacher position it is paired with. Those travel as extra keys of
the input dict: `split` removes them before anything reaches the student's forward, on every path (lambda = 0
included), because torchtitan passes every extra key of the input dict to the model as a keyword.
"""

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch.distributed._functional_collectives import all_reduce
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims

from .config import JobConfig
from .tokenizer import teacher_tokenizer

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]


class TokenMap(Protocol):
    def split(self, input_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Remove (in place) and return the teacher's keys of one micro-batch's input dict."""
        ...

    def begin_step(self, microbatches: list[Batch], parallel_dims: ParallelDims, device: torch.device) -> None:
        """Once per teaching step, before its first micro-batch: whatever needs the whole step (a global count)."""
        ...

    def teacher_inputs(
        self, inputs: torch.Tensor, teacher_batch: dict[str, torch.Tensor], attention_masks: Any
    ) -> tuple[torch.Tensor, Any]:
        """The teacher's token ids and attention masks for this micro-batch."""
        ...

    def teacher_labels(self, labels: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, T]: the teacher's own next tokens (IGNORE_INDEX where none), for the teacher's LM loss."""
        ...

    def to_student(self, target: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The teacher's [B, T, ...] target at the student's [B, S] positions."""
        ...

    def valid(self, labels: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, S] bool: the student positions the term counts."""
        ...

    def normaliser(self, global_valid_tokens: torch.Tensor) -> torch.Tensor:
        """The global count of positions the term counts (what its SUM is divided by)."""
        ...

    def metrics(self) -> dict[str, float]:
        """What the mapping reports for the step (summed over ranks)."""
        ...

    def stop_data(self, dataloader: Any) -> None:
        """The teacher has left: stop whatever the data pipeline does for it."""
        ...


class SameTokens:
    """One tokenizer: the identity map, and the term divides by the CE's own count of valid tokens."""

    def split(self, input_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {}

    def begin_step(self, microbatches: list[Batch], parallel_dims: ParallelDims, device: torch.device) -> None:
        pass

    def teacher_inputs(
        self, inputs: torch.Tensor, teacher_batch: dict[str, torch.Tensor], attention_masks: Any
    ) -> tuple[torch.Tensor, Any]:
        return inputs, attention_masks

    def teacher_labels(self, labels: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return labels

    def to_student(self, target: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return target

    def valid(self, labels: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return labels != IGNORE_INDEX

    def normaliser(self, global_valid_tokens: torch.Tensor) -> torch.Tensor:
        return global_valid_tokens

    def metrics(self) -> dict[str, float]:
        return {}

    def stop_data(self, dataloader: Any) -> None:
        pass


class BytesAligned:
    """Student and teacher tokenizers differ: the teacher reads its own ids, and student position j takes the
    teacher's state at `teacher_index[j]` (-1: no teacher token ends inside the window before it; the position does
    not count). The term's count is its own: one more all-reduce per teaching step (three numbers, no host sync).
    A step in which no position has a target (every document failed the byte-cover check) has a term of 0, not 0/0."""

    KEYS = ("teacher_input", "teacher_index", "teacher_lost", "teacher_length")

    def __init__(self, teacher_masks: Callable[[torch.Tensor], Any]):
        self.teacher_masks = teacher_masks
        self._count = self._lost = self._untargeted = torch.zeros(())

    def split(self, input_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: input_dict.pop(key) for key in self.KEYS if key in input_dict}

    def begin_step(self, microbatches: list[Batch], parallel_dims: ParallelDims, device: torch.device) -> None:
        counts = torch.zeros(3, dtype=torch.int64)
        for input_dict, labels in microbatches:
            predicted = labels != IGNORE_INDEX
            counts[0] += (predicted & (input_dict["teacher_index"] >= 0)).sum()
            counts[1] += input_dict["teacher_lost"].sum()
            counts[2] += (predicted & (input_dict["teacher_index"] < 0)).sum()
        counts = counts.to(device)
        if parallel_dims.dp_enabled:
            counts = all_reduce(counts, "sum", group=parallel_dims.get_mesh("batch"))
        self._count, self._lost, self._untargeted = counts[0].float(), counts[1], counts[2]

    def teacher_inputs(
        self, inputs: torch.Tensor, teacher_batch: dict[str, torch.Tensor], attention_masks: Any
    ) -> tuple[torch.Tensor, Any]:
        tokens = teacher_batch["teacher_input"]
        return tokens, self.teacher_masks(tokens)

    def teacher_labels(self, labels: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens, length = teacher_batch["teacher_input"], teacher_batch["teacher_length"]
        teacher_labels = torch.full_like(tokens, IGNORE_INDEX)
        teacher_labels[:, :-1] = tokens[:, 1:]
        # the window's last teacher token has no next token in it, and padding is no token
        position = torch.arange(tokens.shape[1], device=tokens.device)
        return teacher_labels.masked_fill(position >= (length[:, None] - 1), IGNORE_INDEX)

    def to_student(self, target: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        index = teacher_batch["teacher_index"].clamp(min=0)
        return target.gather(1, index[..., None].expand(-1, -1, target.shape[-1]))

    def valid(self, labels: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (labels != IGNORE_INDEX) & (teacher_batch["teacher_index"] >= 0)

    def normaliser(self, global_valid_tokens: torch.Tensor) -> torch.Tensor:
        # with no target anywhere every sum is 0: 0 / 1, not NaN
        return self._count.clamp(min=1)

    def metrics(self) -> dict[str, float]:
        """This step's student positions without a teacher target: lost, those whose teacher token fell beyond
        let.teacher_seq_len (cut); untargeted, every predicted position without one (lost ones, a document's first
        tokens before any whole teacher token, documents not tokenized byte for byte)."""
        return {"lost": float(self._lost), "untargeted": float(self._untargeted)}

    def stop_data(self, dataloader: Any) -> None:
        dataloader.dataset.set_teacher_side(False)


def build_token_map(job_config: JobConfig, student: torch.nn.Module, student_args: Any) -> TokenMap:
    """The run's mapping of teacher to student positions. Aligned by bytes, a student with flex/varlen attention
    gets the teacher's document masks built by its own torchtitan model from the teacher's ids and EOS."""
    if job_config.let.token_alignment == "same":
        return SameTokens()
    if getattr(student_args, "attn_type", "sdpa") == "sdpa":
        return BytesAligned(lambda tokens: None)
    tokenizer: BaseTokenizer = teacher_tokenizer(job_config)
    return BytesAligned(lambda tokens: student.get_attention_masks(input_batch=tokens, tokenizer=tokenizer))
