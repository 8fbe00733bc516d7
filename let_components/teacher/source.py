"""Where a run's teacher comes from: the teacher folder and the copies the job keeps of it (run_source.py decides
which source a run gets, once, and is the only reader of `let.teacher_path`).

The teacher folder - or, once the teacher has left and the folder may be gone, the copies this job keeps of it in
its dump folder (config.json, the tokenizer files) - its config.json and the text settings every reader takes from
it, the backend and architecture that build it (`let.teacher_backend`), its tokenizer and its fingerprint.
`run_source.teacher_source(job_config)` builds it once per job config: the pre-start checks, the trainer,
torchtitan's TrainSpec hooks (which are handed only the job config) and every probe get this one object.
"""

import functools
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.tools.logging import logger

from ..tokens.tokenizers import TOKENIZER_FILES, has_tokenizer, read_tokenizer_once
from .checkpoint import TEACHER_FINGERPRINT, check_teacher_unchanged, read_hf_config, teacher_fingerprint
from .loader import check_weights, load_teacher, teacher_architecture, teacher_backend
from .registry import TeacherArchitecture, TeacherModel, TeacherOptions
from .text import text_config

TEACHER_CONFIG_COPY = "let_teacher_config.json"
"""config.json of the teacher, kept in the dump folder so a run resumed after the teacher left needs no folder."""
TOKENIZER_COPY = "let_teacher_tokenizer"
"""The teacher's tokenizer files, kept in the dump folder for the same reason."""


@dataclass
class TeacherSource:
    path: str
    """let.teacher_path as given."""
    dump_folder: Path
    """The job's folder, which keeps the copies."""
    requested_backend: str = "auto"
    """let.teacher_backend."""

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """The teacher's config.json, or the copy a previous start of this job kept."""
        copy = self.dump_folder / TEACHER_CONFIG_COPY
        if self._use_copy((Path(self.path) / "config.json").is_file(), copy):
            logger.info(f"[LET] let.teacher_path='{self.path}' has no config.json; using this job's copy {copy}")
            return json.loads(copy.read_text())
        return read_hf_config(self.path)

    @functools.cached_property
    def text(self) -> dict[str, Any]:
        """The text model's settings (vocab_size, hidden_size, num_hidden_layers, ...): checkpoint.text_config."""
        return text_config(self.config)

    @functools.cached_property
    def backend(self) -> str:
        """native or transformers, as let.teacher_backend and the model_type decide (a one-line error if neither)."""
        return teacher_backend(self.config, self.path, self.requested_backend)

    @functools.cached_property
    def architecture(self) -> TeacherArchitecture:
        """The module family that builds the teacher, by its backend (decided once, as the backend is)."""
        return teacher_architecture(self.config, self.path, self.backend)

    def output_width(self, layer: int) -> int:
        """Width of the state the teacher gives at `layer` (what a learned projection maps to)."""
        return self.architecture.output_width(self.config, layer)

    def tokenizer_folder(self) -> tuple[str, str]:
        """(folder, config key) of the teacher's tokenizer: the teacher folder's, or this job's copy once it is gone."""
        copy = self.dump_folder / TOKENIZER_COPY
        if self._use_copy(has_tokenizer(self.path), copy):
            return str(copy), "let.teacher_path (this job's copy)"
        return self.path, "let.teacher_path"

    def tokenizer(self) -> BaseTokenizer:
        """The teacher's own tokenizer, read once per folder (and again only if its files change)."""
        return read_tokenizer_once(*self.tokenizer_folder())

    @staticmethod
    def _use_copy(in_folder: bool, copy: Path) -> bool:
        """The one rule by which a run resumed after its teacher left reads what it kept: the job's copy where the
        teacher folder lacks the file and the copy exists, else the folder (whose errors then name it)."""
        return not in_folder and (copy.is_file() or (copy.is_dir() and has_tokenizer(copy)))

    def keep(self, needed: bool) -> None:
        """Rank 0: the teacher's config and tokenizer stay with the job (a resume after the teacher left needs no
        teacher folder), and its fingerprint while it will teach (a resume must then find the same teacher)."""
        if dist.is_initialized() and dist.get_rank() != 0:
            return
        self.dump_folder.mkdir(parents=True, exist_ok=True)
        (self.dump_folder / TEACHER_CONFIG_COPY).write_text(json.dumps(self.config, indent=2))
        if needed:
            fingerprint = json.dumps(teacher_fingerprint(self.path), indent=2)
            (self.dump_folder / TEACHER_FINGERPRINT).write_text(fingerprint + "\n")
        copy = self.dump_folder / TOKENIZER_COPY
        for name in TOKENIZER_FILES:
            if (Path(self.path) / name).is_file():
                (copy / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(Path(self.path) / name, copy / name)

    def check_weights(self, architecture: TeacherArchitecture, model: torch.nn.Module) -> None:
        """Every weight the module (built on meta) needs is in the folder, of its shape (loader.check_weights)."""
        check_weights(self.path, self.config, architecture, model)

    def check_unchanged(self) -> None:
        """A run resumed while its teacher teaches must be taught by the teacher it started with."""
        check_teacher_unchanged(self.path, self.dump_folder)

    def load(self, device: torch.device | str, dtype: torch.dtype, options: TeacherOptions) -> TeacherModel:
        """The frozen teacher from the folder (loader.load_teacher), built by this source's backend."""
        return load_teacher(self.path, device, dtype, replace(options, backend=self.backend), config=self.config)
