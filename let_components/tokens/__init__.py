"""How teacher tokens meet student tokens (`let.token_alignment`): one option per module, chosen once at start-up.

An option (`TokenAlignment`) says everything a run does differently for it: its checks before start, the student's
vocabulary and tokenizer, the data pipeline, the teacher's window length and, for the step, a `TokenMap` from teacher
positions to student positions. `same.py` (the paper's setting): the student trains in the teacher's tokenizer and
position j is position j. `bytes_aligned.py`: the student keeps its own tokenizer; the dataset (bytes_data.py) adds
the teacher's own tokens of the same text and pairs positions by byte offsets (bytes_keys.py). Per-byte measurement
(per_byte.py) and tokenizer loading (tokenizers.py) live here too. Nothing outside this package reads
let.token_alignment (`token_alignment` does, once; callers keep the option object): a new option is one module and
one `register_token_alignment` line. What an option reads of the teacher is handed to it (`TeacherSide`).
"""

from typing import Any, Protocol

import torch
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims
from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataset

from ..config import JobConfig
from ..data.dataloader import build_text_dataloader
from ..registry import Registry

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]


class TeacherSide(Protocol):
    """What a token option reads of the teacher (teacher.source.TeacherSource is it): handed to the option, never
    looked up from the config here."""

    path: str
    """let.teacher_path, for error lines."""
    text: dict[str, Any]
    """The teacher's text settings (vocab_size, ...)."""

    def tokenizer(self) -> BaseTokenizer:
        """The teacher's own tokenizer, read once."""
        ...

    def tokenizer_folder(self) -> tuple[str, str]:
        """(folder, config key) the teacher's tokenizer is read from."""
        ...


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

    def teacher_label_bytes(self, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """[B, T]: the bytes of text each teacher label stands for, read off the text (None: the teacher tokenizer's
        per-id table says them), for the teacher's loss per byte."""
        ...

    def student_label_bytes(self, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """[B, S]: the same for the student's labels (None: its tokenizer's table)."""
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


class TokenAlignment(Protocol):
    """One value of let.token_alignment."""

    name: str
    """Its let.token_alignment value (what it is registered under)."""
    one_to_one: bool
    """Teacher position j is student position j (one tokenizer): what logit distillation and probes that read the
    teacher's head at the student's positions need."""

    def describe(self, job_config: JobConfig) -> str:
        """For the start-up line."""
        ...

    def check_config(self, job_config: JobConfig) -> None:
        """Before start, from the config alone: the option's own keys."""
        ...

    def check_tokenizers(self, job_config: JobConfig, teacher: TeacherSide, student: BaseTokenizer,
                         teacher_needed: bool) -> None:
        """Before start, after the teacher folder's checks: the tokenizers the option reads, and that the student's
        is the one the option trains in (a check that reads the teacher folder only while it can teach)."""
        ...

    def student_vocab_size(self, job_config: JobConfig, teacher: TeacherSide) -> int:
        """The student's embedding rows."""
        ...

    def teacher_seq_len(self, job_config: JobConfig) -> int:
        """Tokens per teacher window."""
        ...

    def teacher_seq_len_key(self, job_config: JobConfig) -> str:
        """The config key that set `teacher_seq_len`, for the errors that name it."""
        ...

    def build_dataloader(self, dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config: JobConfig,
                         infinite: bool, teacher: TeacherSide) -> ParallelAwareDataloader:
        """The student TrainSpec's dataloader while LET is on."""
        ...

    def build_map(self, job_config: JobConfig, student: torch.nn.Module, student_args: Any,
                  teacher: TeacherSide) -> TokenMap:
        """The step's map from teacher to student positions."""
        ...

    def text_dataset(self, job_config: JobConfig, tokenizer: BaseTokenizer, dataset: str, dataset_path: str | None,
                     seq_len: int, teacher: TeacherSide) -> HuggingFaceTextDataset:
        """Finite windows of a dataset as the step sees them, teacher keys included (for tools that probe a run)."""
        ...


TOKEN_ALIGNMENTS: Registry[TokenAlignment] = Registry("let.token_alignment",
                                                      lambda job_config: job_config.let.token_alignment)
"""let.token_alignment -> its option; `token_alignment(job_config)` is the run's (the one reader of
let.token_alignment). Callers keep the object: it answers everything the option decides."""
token_alignment = TOKEN_ALIGNMENTS.chosen


def register_token_alignment(option: TokenAlignment) -> None:
    TOKEN_ALIGNMENTS.register(option.name, option)


def build_dataloader(dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config: JobConfig,
                     infinite: bool = True, teacher: "TeacherSide | None" = None) -> ParallelAwareDataloader:
    """The student TrainSpec's dataloader: torchtitan's for a baseline, the alignment's while LET is on."""
    let = getattr(job_config, "let", None)
    if let is None or not let.enable:
        return build_text_dataloader(dp_world_size, dp_rank, tokenizer, job_config, infinite)
    alignment = token_alignment(job_config)
    return alignment.build_dataloader(dp_world_size, dp_rank, tokenizer, job_config, infinite, teacher)


from .bytes_aligned import Bytes  # noqa: E402  (the options import this module's protocols)
from .same import Same  # noqa: E402

register_token_alignment(Same())
register_token_alignment(Bytes())
