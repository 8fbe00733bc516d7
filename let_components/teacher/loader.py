"""Loading a frozen, forward-only teacher from a Hugging Face-format folder, whatever its architecture."""

import os

import torch
from torchtitan.tools import utils

from ..config import LETConfigError
from .checkpoint import load_hf_state_dict, read_hf_config
from .registry import TEACHER_ARCHITECTURES, TeacherArchitecture, TeacherModel, TeacherOptions


def teacher_architecture(config: dict, path: str | os.PathLike = "") -> TeacherArchitecture:
    """The registered architecture for a config.json, or a one-line error listing what is supported."""
    model_type = config.get("model_type")
    if model_type not in TEACHER_ARCHITECTURES:
        raise LETConfigError(
            f"let.teacher_path='{path}': model_type {model_type!r} is not a supported teacher; "
            f"supported: {sorted(TEACHER_ARCHITECTURES)}"
        )
    return TEACHER_ARCHITECTURES[model_type]


def load_teacher(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    options: TeacherOptions = TeacherOptions(),
) -> TeacherModel:
    """Build the teacher on the meta device, then materialise it on `device` straight from safetensors.

    The result is in eval mode with `requires_grad=False` everywhere: LET never trains the teacher.
    """
    config = read_hf_config(path)
    architecture = teacher_architecture(config, path)
    with torch.device("meta"), utils.set_default_dtype(dtype):
        model = architecture.build(config, options)
    state_dict = architecture.convert_state_dict(config, load_hf_state_dict(path))
    # Blocks after the requested layer (and the LM head of tied checkpoints) are not in the module.
    wanted = model.state_dict().keys()
    state_dict = {key: value for key, value in state_dict.items() if key in wanted}
    model.to_empty(device=device)
    model.load_state_dict(state_dict, strict=True)
    model.init_buffers()
    model.eval().requires_grad_(False)
    return model
