"""How teacher tokens meet student tokens (`let.token_alignment`): one option per module, chosen once at start-up.

An option (`TokenAlignment`) says everything a run does differently for it: its checks before start, the student's
vocabulary and tokenizer, the data pipeline, the teacher's window length and, for the step, a `TokenMap` from teacher
positions to student positions. `same.py` (the paper's setting): the student trains in the teacher's tokenizer and
position j is position j. `bytes_aligned.py`: the student keeps its own tokenizer; the dataset (bytes_data.py) adds
the teacher's own tokens of the same text and pairs positions by byte offsets (bytes_keys.py). Per-byte measurement
(per_byte.py) and tokenizer loading (tokenizers.py) live here too. Nothing outside this package reads
let.token_alignment: a new option is one module and one `register_token_alignment` line.
"""

from typing import Any, Protocol

import torch
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims
from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataset

from ..config import JobConfig, registered
from ..data.dataloader import build_text_dataloader
from .tokenizers import check_tokenizer_fits

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


class TokenAlignment(Protocol):
    """One value of let.token_alignment."""

    one_to_one: bool
    """Teacher position j is student position j (one tokenizer): what logit distillation and probes that read the
    teacher's head at the student's positions need."""

    def describe(self, job_config: JobConfig) -> str:
        """For the start-up line."""
        ...

    def check_config(self, job_config: JobConfig) -> None:
        """Before start, from the config alone: the option's own keys."""
        ...

    def check_tokenizers(self, job_config: JobConfig) -> None:
        """Before start, after the teacher folder's checks: the tokenizers the option reads."""
        ...

    def check_tokenizer(self, tokenizer: BaseTokenizer, job_config: JobConfig, teacher_needed: bool) -> None:
        """Once the student's tokenizer is built: that it is the one the option trains in."""
        ...

    def student_vocab_size(self, job_config: JobConfig, teacher: dict[str, Any]) -> int:
        """The student's embedding rows, given the teacher's config.json."""
        ...

    def teacher_seq_len(self, job_config: JobConfig) -> int:
        """Tokens per teacher window."""
        ...

    def build_dataloader(self, dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config: JobConfig,
                         infinite: bool) -> ParallelAwareDataloader:
        """The student TrainSpec's dataloader while LET is on."""
        ...

    def build_map(self, job_config: JobConfig, student: torch.nn.Module, student_args: Any) -> TokenMap:
        """The step's map from teacher to student positions."""
        ...

    def text_dataset(self, job_config: JobConfig, tokenizer: BaseTokenizer, dataset: str, dataset_path: str | None,
                     seq_len: int) -> HuggingFaceTextDataset:
        """Finite windows of a dataset as the step sees them, teacher keys included (for tools that probe a run)."""
        ...


TOKEN_ALIGNMENTS: dict[str, TokenAlignment] = {}
"""let.token_alignment -> its option."""


def register_token_alignment(name: str, option: TokenAlignment) -> None:
    TOKEN_ALIGNMENTS[name] = option


def token_alignment(job_config: JobConfig) -> TokenAlignment:
    """The run's option; an unknown let.token_alignment is a one-line error naming the registered ones."""
    return registered(TOKEN_ALIGNMENTS, "token_alignment", job_config.let.token_alignment)


def check_token_config(job_config: JobConfig) -> None:
    token_alignment(job_config).check_config(job_config)


def check_tokenizers(job_config: JobConfig) -> None:
    token_alignment(job_config).check_tokenizers(job_config)


def check_tokenizer(
    tokenizer: BaseTokenizer, job_config: JobConfig, student_vocab_size: int, teacher_needed: bool = True
) -> None:
    """Before training: every id the student's tokenizer emits has an embedding row, and the tokenizer is the one
    the alignment trains in (a check that reads the teacher folder is skipped once the teacher has left)."""
    check_tokenizer_fits(tokenizer, job_config, student_vocab_size)
    token_alignment(job_config).check_tokenizer(tokenizer, job_config, teacher_needed)


def describe(job_config: JobConfig) -> str:
    return token_alignment(job_config).describe(job_config)


def student_vocab_size(job_config: JobConfig, teacher: dict[str, Any]) -> int:
    return token_alignment(job_config).student_vocab_size(job_config, teacher)


def teacher_seq_len(job_config: JobConfig) -> int:
    """Tokens per teacher window: the student's training.seq_len unless the alignment says otherwise."""
    return token_alignment(job_config).teacher_seq_len(job_config)


def build_dataloader(
    dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config: JobConfig, infinite: bool = True
) -> ParallelAwareDataloader:
    """The student TrainSpec's dataloader: torchtitan's text dataloader for a baseline, the alignment's while LET is
    on; both in data.dataloader.TextDataloader."""
    let = getattr(job_config, "let", None)
    if let is None or not let.enable:
        return build_text_dataloader(dp_world_size, dp_rank, tokenizer, job_config, infinite)
    return token_alignment(job_config).build_dataloader(dp_world_size, dp_rank, tokenizer, job_config, infinite)


def build_token_map(job_config: JobConfig, student: torch.nn.Module, student_args: Any) -> TokenMap:
    return token_alignment(job_config).build_map(job_config, student, student_args)


def one_to_one(job_config: JobConfig) -> bool:
    return token_alignment(job_config).one_to_one


def text_dataset(job_config: JobConfig, tokenizer: BaseTokenizer, dataset: str, dataset_path: str | None,
                 seq_len: int) -> HuggingFaceTextDataset:
    return token_alignment(job_config).text_dataset(job_config, tokenizer, dataset, dataset_path, seq_len)


from .bytes_aligned import Bytes  # noqa: E402  (the options import this module's protocols)
from .same import Same  # noqa: E402

register_token_alignment("same", Same())
register_token_alignment("bytes", Bytes())
