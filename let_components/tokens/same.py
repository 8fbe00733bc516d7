"""let.token_alignment = "same" (the paper's setting): the student trains in the teacher's tokenizer.

Teacher position j is student position j: the teacher reads the student's own input ids, and the term counts the
positions CE counts and divides by CE's own count.
"""

from typing import Any

import torch
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims
from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataset

from ..config import JobConfig, LETConfigError
from ..data.dataloader import build_text_dataloader
from . import Batch, TeacherSide
from .tokenizers import tokenizer_source


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

    def teacher_label_bytes(self, teacher_batch: dict[str, torch.Tensor]) -> None:
        return None  # one tokenizer: its per-id table serves both models alike

    def student_label_bytes(self, teacher_batch: dict[str, torch.Tensor]) -> None:
        return None

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



class Same:
    """The option: torchtitan's data pipeline and windows, and the teacher's tokenizer for the student."""

    name = "same"
    one_to_one = True

    def describe(self, job_config: JobConfig) -> str:
        # let.teacher_window_bos stays off here: the teacher reads the windows torchtitan packs for the student,
        # which is how a teacher pretrained by packing (ours, SmolLM, Llama 3) read its data; one that always read
        # a BOS first (Gemma) keeps it through token_alignment = "bytes", which pairs one tokenizer one to one too
        return ("token_alignment=same: the teacher reads the student's windows as packed "
                "(let.teacher_window_bos: token_alignment=bytes only)")

    def check_config(self, job_config: JobConfig) -> None:
        pass

    def check_tokenizers(self, job_config: JobConfig, teacher: TeacherSide, student: BaseTokenizer,
                         teacher_needed: bool) -> None:
        """The student's tokenizer IS the teacher's (read from the teacher folder, so only while it can teach)."""
        if not teacher_needed:
            return
        folder, key = tokenizer_source(job_config, teacher)
        try:
            teacher_tokenizer = teacher.tokenizer()
        except LETConfigError:
            raise LETConfigError(
                f"let.teacher_path='{teacher.path}': no tokenizer files to compare with {key}; add "
                "the teacher's tokenizer there"
            ) from None
        if teacher_tokenizer.get_vocab() != student.get_vocab():
            raise LETConfigError(
                f"{key}='{folder}': its tokenizer differs from the teacher's at "
                f"let.teacher_path='{teacher.path}' (token_alignment = 'same' pairs token positions); "
                "use the teacher's tokenizer (leave model.hf_assets_path unset), or set let.token_alignment = 'bytes' "
                "to keep this one"
            )

    def student_vocab_size(self, job_config: JobConfig, teacher: TeacherSide) -> int:
        return teacher.text["vocab_size"]

    def teacher_seq_len(self, job_config: JobConfig) -> int:
        return job_config.training.seq_len

    def teacher_seq_len_key(self, job_config: JobConfig) -> str:
        return "training.seq_len"

    def build_dataloader(self, dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config: JobConfig,
                         infinite: bool, teacher: TeacherSide) -> ParallelAwareDataloader:
        return build_text_dataloader(dp_world_size, dp_rank, tokenizer, job_config, infinite)

    def build_map(self, job_config: JobConfig, student: torch.nn.Module, student_args: Any,
                  teacher: TeacherSide) -> SameTokens:
        return SameTokens()

    def text_dataset(self, job_config: JobConfig, tokenizer: BaseTokenizer, dataset: str, dataset_path: str | None,
                     seq_len: int, teacher: TeacherSide) -> HuggingFaceTextDataset:
        return HuggingFaceTextDataset(dataset, dataset_path, tokenizer, seq_len)
