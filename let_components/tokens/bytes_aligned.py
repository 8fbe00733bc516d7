"""let.token_alignment = "bytes": the student keeps its own tokenizer; teacher and student meet by bytes of text.

The dataset (bytes_data.py) adds the teacher's own token ids of the same text and, per student position, the teacher
position it is paired with (bytes_keys.py). Those travel as extra keys of the input dict: `split` removes them
before anything reaches the student's forward, on every path (lambda = 0 included), because torchtitan passes every
extra key of the input dict to the model as a keyword.
"""

from collections.abc import Callable
from typing import Any

import torch
from torch.distributed._functional_collectives import all_reduce
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims
from torchtitan.protocols.train_spec import get_train_spec
from torchtitan.tools.logging import logger

from ..config import JobConfig, LETConfigError
from . import Batch, TeacherSide
from .bytes_data import ByteAlignedTextDataset, build_byte_aligned_dataloader
from .bytes_keys import ByteTokenizer
from .tokenizers import student_tokenizer, tokenizer_source


class BytesAligned:
    """Student and teacher tokenizers differ: the teacher reads its own ids, and student position j takes the
    teacher's state at `teacher_index[j]` (-1: no teacher token ends inside the window before it; the position does
    not count). The term's count is its own: one more all-reduce per teaching step (three numbers, no host sync).
    A step in which no position has a target (every document failed the byte-cover check) has a term of 0, not 0/0."""

    KEYS = ("teacher_input", "teacher_index", "teacher_lost", "teacher_length", "teacher_head", "teacher_bytes",
            "label_bytes")

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
        # the window's last teacher token has no next token in it, and padding is no token; nor is the BOS put
        # before a window that starts inside a document a context: from it alone the teacher would predict the
        # window's first token, which the student never has to do
        position = torch.arange(tokens.shape[1], device=tokens.device)
        no_label = (position >= (length[:, None] - 1)) | (position < teacher_batch["teacher_head"][:, None])
        return teacher_labels.masked_fill(no_label, IGNORE_INDEX)

    def teacher_label_bytes(self, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # the label at teacher position p is the token at p + 1
        label_bytes = torch.zeros_like(teacher_batch["teacher_bytes"])
        label_bytes[:, :-1] = teacher_batch["teacher_bytes"][:, 1:]
        return label_bytes

    def student_label_bytes(self, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return teacher_batch["label_bytes"]

    def to_student(self, target: torch.Tensor, teacher_batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # teacher_index[j] is the causal pairing (bytes_keys.align_window): the teacher position whose token ends last
        # at or before student token j ends, so the target never carries text the student has not read yet; -1 (no
        # such token) gathers position 0, which `valid` leaves out of every sum
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



class Bytes:
    """The option: the student's own tokenizer and vocabulary, the byte-aligned dataset, teacher windows of
    let.teacher_seq_len tokens."""

    name = "bytes"
    one_to_one = False

    def describe(self, job_config: JobConfig) -> str:
        return f"token_alignment=bytes, teacher windows of {self.teacher_seq_len(job_config)} tokens"

    def check_config(self, job_config: JobConfig) -> None:
        workers = job_config.training.dataloader.num_workers
        if workers > 1:
            raise LETConfigError(
                f"training.dataloader.num_workers={workers}: token_alignment='bytes' takes 0 or 1 (torchtitan's text "
                "dataset is not split between workers; 1 moves the tokenization off the training step)"
            )

    def check_tokenizers(self, job_config: JobConfig, teacher: TeacherSide, student: BaseTokenizer,
                         teacher_needed: bool) -> None:
        """Both tokenizers say which bytes each token covers and put only fixed tokens around a document (each a
        one-line error naming its key otherwise); the student's is its own, so nothing compares them."""
        ByteTokenizer.build(student, tokenizer_source(job_config, teacher)[1])
        ByteTokenizer.build(teacher.tokenizer(), "let.teacher_path")

    def student_vocab_size(self, job_config: JobConfig, teacher: TeacherSide) -> int:
        # a row per id the student's own tokenizer can emit
        return student_tokenizer(job_config, teacher).get_vocab_size()

    def teacher_seq_len(self, job_config: JobConfig) -> int:
        return job_config.let.teacher_seq_len or job_config.training.seq_len

    def teacher_seq_len_key(self, job_config: JobConfig) -> str:
        return "let.teacher_seq_len" if job_config.let.teacher_seq_len else "training.seq_len"

    def build_dataloader(self, dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config: JobConfig,
                         infinite: bool, teacher: TeacherSide) -> ParallelAwareDataloader:
        """The byte-aligned dataset in torchtitan's dataloader."""
        student = get_train_spec(job_config.model.name).model_args[job_config.model.flavor]
        if job_config.training.dataloader.num_workers == 0:
            logger.info("[LET] token_alignment='bytes': the teacher's tokenization of the text runs in the training "
                        "process (training.dataloader.num_workers = 0); 1 moves it off the training step")
        return build_byte_aligned_dataloader(
            dp_world_size, dp_rank, tokenizer, job_config, infinite,
            # a student with document masking sees one document per segment: its teacher target must come from it too
            same_document=getattr(student, "attn_mask_type", "causal") == "block_causal",
            **self._teacher_side(job_config, teacher),
        )

    def _teacher_side(self, job_config: JobConfig, teacher: TeacherSide) -> dict[str, Any]:
        """The teacher's side of the windows, one for training and the probes: its tokenizer, its window length and
        whether a window starts with its BOS, with the student tokenizer's key for error lines."""
        return {"teacher_tokenizer": teacher.tokenizer(), "teacher_len": self.teacher_seq_len(job_config),
                "teacher_bos": job_config.let.teacher_window_bos,
                "tokenizer_key": tokenizer_source(job_config, teacher)[1]}

    def build_map(self, job_config: JobConfig, student: torch.nn.Module, student_args: Any,
                  teacher: TeacherSide) -> BytesAligned:
        """With flex/varlen attention, the teacher's document masks are built by the student's own torchtitan model
        from the teacher's ids and EOS."""
        if getattr(student_args, "attn_type", "sdpa") == "sdpa":
            return BytesAligned(lambda tokens: None)
        tokenizer = teacher.tokenizer()
        return BytesAligned(lambda tokens: student.get_attention_masks(input_batch=tokens, tokenizer=tokenizer))

    def text_dataset(self, job_config: JobConfig, tokenizer: BaseTokenizer, dataset: str, dataset_path: str | None,
                     seq_len: int, teacher: TeacherSide) -> ByteAlignedTextDataset:
        """The windows as training cuts them, teacher side included; pairs across documents (the probes run the
        teacher without document masks)."""
        return ByteAlignedTextDataset(dataset, dataset_path, tokenizer, seq_len, same_document=False,
                                      **self._teacher_side(job_config, teacher))
