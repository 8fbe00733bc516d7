"""The dry run's teacher where its folder is not on this machine: the real teacher's shape, random weights.

A dry run (let_components/dry_run.py) checks that a config builds and steps at its world size, which needs the
teacher's width, depth and vocabulary, not its knowledge. `StandInTeacherSource` answers every question a
TeacherSource answers: config.json from the shipped teachers' table (shapes.py), weights drawn at load, and a
byte-level tokenizer (tokens/byte_level.py) whose ids fit the vocabulary. `teacher_source` picks it once, so the
checks, the trainer and the step read it as they read a folder.
"""

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchtitan.tools.logging import logger

from ..config import LETConfigError
from ..tokens.byte_level import BYTE_LEVEL_IDS, write_byte_level_tokenizer
from .loader import build_meta_teacher
from .registry import TeacherArchitecture, TeacherModel, TeacherOptions
from .shapes import TEACHER_CONFIGS, shipped_teacher
from .source import TeacherSource

STAND_IN_TOKENIZER = "let_dry_run_tokenizer"
"""The stand-in tokenizer's folder in the dump folder."""
WEIGHT_STD = 0.02
"""Matrices ~ N(0, 0.02) (HF's initializer_range); norm weights 1, biases 0: a forward of the usual scale."""


@dataclass
class StandInTeacherSource(TeacherSource):
    shape_config: dict[str, Any] | None = None
    """The shipped teacher's config.json standing in (shapes.TEACHER_CONFIGS)."""

    @classmethod
    def of(cls, path: str, dump_folder: Path, requested_backend: str) -> "StandInTeacherSource":
        """The stand-in for the teacher folder `path` (let.teacher_path), said once in the log; a one-line error
        where the table has no shape for it."""
        found = shipped_teacher(path)
        if found is None:
            raise LETConfigError(
                f"let.teacher_path='{path}': no config.json there, and a dry run knows the shape only of "
                f"{', '.join(TEACHER_CONFIGS)} (let_components/teacher/shapes.py); put the teacher folder there"
            )
        if requested_backend == "transformers":
            raise LETConfigError(
                f"let.teacher_backend='transformers': a dry run without the teacher folder builds {found[0]}'s shape "
                "with this package's native module (the transformers backend needs the model's own files); use "
                "teacher_backend = 'auto' or put the teacher folder at let.teacher_path"
            )
        source = cls(path, dump_folder, requested_backend, shape_config=found[1])
        text = source.text
        logger.info(
            f"[LET] dry run: no teacher folder at let.teacher_path='{path}': {found[0]}'s shape stands in "
            f"({source.config['model_type']}, {text['num_hidden_layers']} blocks x {text['hidden_size']}, vocabulary "
            f"{text['vocab_size']}) with random weights (its sanity check reads chance level), and a byte-level "
            f"tokenizer of {BYTE_LEVEL_IDS} ids, all within that vocabulary ({source.tokenizer_folder()[0]})"
        )
        return source

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        return self.shape_config

    def tokenizer_folder(self) -> tuple[str, str]:
        folder = write_byte_level_tokenizer(self.dump_folder / STAND_IN_TOKENIZER)
        return str(folder), "let.teacher_path (the dry run's stand-in tokenizer)"

    def keep(self, needed: bool) -> None:
        """Nothing is kept: a copy of a stand-in's config must never pass for the teacher's at a later start."""

    def check_weights(self, architecture: TeacherArchitecture, model: torch.nn.Module) -> None:
        """Nothing to check: the weights are drawn to the module's own shapes."""

    def check_unchanged(self) -> None:
        """A dry run never resumes."""

    def load(self, device: torch.device | str, dtype: torch.dtype, options: TeacherOptions) -> TeacherModel:
        """The teacher module of this shape on `device`, random weights (seeded), frozen."""
        model = build_meta_teacher(self.config, self.architecture, options, dtype)
        model.to_empty(device=device)
        generator = torch.Generator(device=device).manual_seed(0)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if param.dim() > 1:
                    param.normal_(0.0, WEIGHT_STD, generator=generator)
                else:
                    param.fill_(0.0 if name.endswith("bias") else 1.0)
        model.init_buffers()
        return model.eval().requires_grad_(False)
