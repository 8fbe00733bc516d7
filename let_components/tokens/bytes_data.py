"""torchtitan's text dataset, plus the teacher's own tokenization of the same text (cross-tokenizer LET).

The student's windows are torchtitan's, id for id: same documents, same `encode` call, same packing and the same
checkpoint keys. Beside them the dataset tokenizes each document with the teacher's tokenizer and pairs every
student position with a teacher token by byte offsets (bytes_keys.py).
"""

import multiprocessing
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.config import JobConfig
from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataset
from torchtitan.tools.logging import logger

from ..data.dataloader import TextDataloader, text_dataloader
from .bytes_keys import ByteTokenizer, KeyedTokens, align_window, document_tokens, token_bytes

TEACHER_STATE = "teacher_side"
"""The state_dict key of everything the teacher side buffers; absent while the teacher side is off."""


class ByteAlignedTextDataset(HuggingFaceTextDataset):
    """HuggingFaceTextDataset whose samples also carry the teacher's window:

    `({"input": [S], "teacher_input": [teacher_len], "teacher_index": [S], "teacher_lost": [],
    "teacher_length": [], "teacher_head": [], "teacher_bytes": [teacher_len], "label_bytes": [S]}, labels [S])`:
    teacher_index[j] the position in teacher_input of student position j's teacher token (-1: none), teacher_lost the
    positions whose teacher token was cut by teacher_len, teacher_length the teacher tokens before the padding,
    teacher_head the tokens put before the window's text (a BOS, with teacher_bos), teacher_bytes and label_bytes
    the bytes of text each teacher token and each student label stands for (per-byte measurement).

    `set_teacher_side(False)` (the teacher is gone) makes it torchtitan's dataset again: only {"input"}, no teacher
    tokenization. The switch is a flag in shared memory, so it also reaches a dataloader worker process
    (`training.dataloader.num_workers = 1` takes the teacher-side work off the training step's critical path), and it
    takes effect between batches only (every `batch_size` samples): a worker that sees it in the middle of a batch
    finishes that batch with the teacher side, as collating a batch needs the same keys in all its samples.
    """

    def __init__(
        self,
        dataset_name: str,
        dataset_path: str | None,
        tokenizer: BaseTokenizer,
        seq_len: int = 2048,
        dp_rank: int = 0,
        dp_world_size: int = 1,
        infinite: bool = False,
        *,
        teacher_tokenizer: BaseTokenizer,
        teacher_len: int,
        same_document: bool,
        pad_id: int | None = None,
        tokenizer_key: str = "model.hf_assets_path",
        teacher_key: str = "let.teacher_path",
        teacher_bos: bool = False,
        batch_size: int = 1,
    ) -> None:
        super().__init__(dataset_name, dataset_path, tokenizer, seq_len, dp_rank, dp_world_size, infinite)
        self._student_bytes = ByteTokenizer.build(tokenizer, tokenizer_key)
        self._teacher_bytes = ByteTokenizer.build(teacher_tokenizer, teacher_key)
        self.teacher_len = teacher_len
        self.same_document = same_document
        # padding sits after the teacher's real tokens, so under causal attention no target reads it: any id will do
        eos = teacher_tokenizer.eos_id
        self.pad_id = pad_id if pad_id is not None else eos if eos is not None else 0
        """Fills a teacher window after its tokens (default: the teacher's EOS, 0 if it has none)."""
        self.teacher_bos = teacher_bos
        """Put the teacher tokenizer's BOS (its prefix) first in every teacher window that lacks it."""
        # shared with dataloader workers (forked with it): the trainer's switch reaches the process that iterates
        self._switch = multiprocessing.Value("b", 1, lock=False)
        self._side_applied = True
        self.batch_size = batch_size
        """Samples the dataloader collates into one batch: the switch applies at their boundaries."""
        self._yielded = 0
        self.invalid_documents = 0
        """Documents a tokenizer did not cover byte for byte (a normalizer changed the text): no targets there."""
        self._start_key_stream()

    def _start_key_stream(self) -> None:
        """Keys restart at document 0, byte 0; student tokens already buffered have none and get no target."""
        self._student_keys = KeyedTokens.unkeyed(self._token_buffer)
        self._teacher_tokens = KeyedTokens.empty()
        self._next_doc = 0
        self._next_byte = 0

    @property
    def teacher_side(self) -> bool:
        """Whether the teacher side is on, applying a switch made since the last look (in this process) if no batch
        is half made."""
        enabled = bool(self._switch.value)
        if enabled != self._side_applied and self._yielded % self.batch_size == 0:
            if enabled:
                self._start_key_stream()
            else:
                self._student_keys = self._teacher_tokens = None
            self._side_applied = enabled
        return self._side_applied

    def set_teacher_side(self, enabled: bool) -> None:
        """False: stop the teacher-side work and drop its buffers (the teacher is released)."""
        self._switch.value = int(enabled)
        _ = self.teacher_side

    def _add_document(self, text: str) -> None:
        """Tokenize one document on both sides; its student ids go to the buffer torchtitan's loop cuts."""
        doc, base = self._next_doc, self._next_byte
        student, student_covers = document_tokens(self._student_bytes, text, doc, base)
        teacher, teacher_covers = document_tokens(self._teacher_bytes, text, doc, base)
        if not (student_covers and teacher_covers):
            self.invalid_documents += 1
            student, teacher = student.without_targets(), teacher.without_targets()
            self._report_invalid(student_covers, teacher_covers)
        self._token_buffer.extend(student.ids.tolist())
        self._student_keys = KeyedTokens.concat([self._student_keys, student])
        self._teacher_tokens = KeyedTokens.concat([self._teacher_tokens, teacher])
        self._next_doc = doc + 1
        self._next_byte = base + len(text.encode("utf-8")) + 1

    def _report_invalid(self, student_covers: bool, teacher_covers: bool) -> None:
        """One line per rejected document (then every power of two): logged by the process that tokenizes, so a
        dataloader worker's count reaches the console too."""
        count = self.invalid_documents
        if count > 10 and count & (count - 1):
            return
        sides = [name for name, covers in (("student", student_covers), ("teacher", teacher_covers)) if not covers]
        logger.warning(
            f"[LET] token_alignment='bytes': document {self._sample_idx} of this rank's pass over "
            f"{self.dataset_name} is not tokenized byte for byte by the {' and '.join(sides)} tokenizer (a normalizer "
            f"changed its text): its positions get no teacher target ({count} such documents so far; logged up to "
            "10, then at powers of 2)"
        )

    def _teacher_window(self) -> dict[str, torch.Tensor]:
        """The teacher's side of the window just cut (seq_len inputs + 1 label token off the buffer's front)."""
        labels = self._student_keys[1: self.seq_len + 1]
        aligned = align_window(
            self._student_keys[: self.seq_len], self._teacher_tokens, self.teacher_len, self.pad_id,
            self.same_document, self._teacher_bytes.prefix if self.teacher_bos else (),
        )
        self._student_keys = self._student_keys[self.seq_len + 1:]
        # teacher tokens that start before the next window's first token are in no later window
        teacher = self._teacher_tokens
        keep = np.searchsorted(teacher.start, self._student_keys.start[0]) if len(self._student_keys) else len(teacher)
        self._teacher_tokens = teacher[keep:]
        return {
            "teacher_input": torch.from_numpy(aligned.teacher_input),
            "teacher_index": torch.from_numpy(aligned.teacher_index),
            "teacher_lost": torch.tensor(aligned.lost),
            "teacher_length": torch.tensor(aligned.length),
            "teacher_head": torch.tensor(aligned.head),
            "teacher_bytes": torch.from_numpy(aligned.teacher_bytes),
            # the student's labels are its tokens 1..S of the window: their bytes, read off their keys
            "label_bytes": torch.from_numpy(token_bytes(labels)),
        }

    def __iter__(self):
        # HuggingFaceTextDataset.__iter__ (torchtitan 0.2.2) with the teacher side added: it offers no hook per
        # document, and the student's ids, packing and re-looping must stay exactly its own.
        max_buffer_token_len = 1 + self.seq_len
        self._yielded = 0  # a pass (or a resumed one) starts at a batch boundary
        while True:
            for sample in self._get_data_iter():
                sample_text = self._text_processor(sample)
                if self.teacher_side:
                    self._add_document(sample_text)
                else:
                    self._token_buffer.extend(self._tokenizer.encode(sample_text, add_bos=True, add_eos=True))
                self._sample_idx += 1

                while len(self._token_buffer) >= max_buffer_token_len:
                    x = torch.LongTensor(self._token_buffer[:max_buffer_token_len])
                    self._token_buffer = self._token_buffer[max_buffer_token_len:]
                    inputs = {"input": x[:-1]}
                    if self.teacher_side:
                        inputs |= self._teacher_window()
                    self._yielded += 1
                    yield inputs, x[1:]

            if not self.infinite:
                logger.warning(f"Dataset {self.dataset_name} has run out of data")
                break
            self._sample_idx = 0
            logger.warning(f"Dataset {self.dataset_name} is being re-looped")
            if not isinstance(self._data, Dataset) and hasattr(self._data, "set_epoch") and hasattr(
                self._data, "epoch"
            ):
                self._data.set_epoch(self._data.epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        """torchtitan's state, plus (teacher side on) the keys of the buffered student tokens, the buffered teacher
        tokens and the position in the byte stream: plain ints and lists."""
        # a copy: torchtitan's loop extends its buffer list in place, which would change a state not yet saved
        state = {**super().state_dict(), "token_buffer": list(self._token_buffer)}
        if self.teacher_side:
            state[TEACHER_STATE] = {
                "next_doc": self._next_doc,
                "next_byte": self._next_byte,
                "invalid_documents": self.invalid_documents,
                "student": self._student_keys.state_dict(),
                "teacher": self._teacher_tokens.state_dict(),
            }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A state without the teacher side (saved with it off, or by torchtitan's dataset) restarts the key stream:
        the student tokens it buffered get no target."""
        super().load_state_dict({**state_dict, "token_buffer": list(state_dict["token_buffer"])})
        side = state_dict.get(TEACHER_STATE)
        if not self.teacher_side:
            return
        if side is None:
            self._start_key_stream()
            return
        self._student_keys = KeyedTokens.from_state_dict(side["student"])
        self._teacher_tokens = KeyedTokens.from_state_dict(side["teacher"])
        self._next_doc, self._next_byte = side["next_doc"], side["next_byte"]
        self.invalid_documents = side["invalid_documents"]
        if self._student_keys.ids.tolist() != list(self._token_buffer):
            raise ValueError("dataset state: the teacher side's keys do not belong to its token buffer")


def build_byte_aligned_dataloader(
    dp_world_size: int,
    dp_rank: int,
    tokenizer: BaseTokenizer,
    job_config: JobConfig,
    infinite: bool = True,
    *,
    teacher_tokenizer: BaseTokenizer,
    teacher_len: int,
    same_document: bool,
    teacher_bos: bool = False,
    tokenizer_key: str = "model.hf_assets_path",
) -> TextDataloader:
    """torchtitan's build_text_dataloader with ByteAlignedTextDataset, in the shared TextDataloader (bind the
    keywords with functools.partial to use it as a TrainSpec's build_dataloader_fn)."""
    dataset = ByteAlignedTextDataset(
        dataset_name=job_config.training.dataset,
        dataset_path=job_config.training.dataset_path,
        tokenizer=tokenizer,
        seq_len=job_config.training.seq_len,
        dp_rank=dp_rank,
        dp_world_size=dp_world_size,
        infinite=infinite,
        teacher_tokenizer=teacher_tokenizer,
        teacher_len=teacher_len,
        same_document=same_document,
        tokenizer_key=tokenizer_key,
        teacher_key="let.teacher_path",
        teacher_bos=teacher_bos,
        batch_size=job_config.training.local_batch_size,
    )
    return text_dataloader(dataset, dp_rank, dp_world_size, job_config)
