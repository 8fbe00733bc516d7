"""Loading a frozen, forward-only teacher from a Hugging Face-format folder, whatever its architecture."""

import os

import torch
from torch import nn
from torchtitan.tools import utils

from ..config import LETConfigError
from .checkpoint import load_hf_state_dict, read_hf_config, weight_shapes
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


def build_meta_teacher(config: dict, architecture: TeacherArchitecture, options: TeacherOptions,
                       dtype: torch.dtype = torch.float32) -> TeacherModel:
    """The teacher module on the meta device: its shapes, without memory."""
    with torch.device("meta"), utils.set_default_dtype(dtype):
        return architecture.build(config, options)


def check_weights(path: str | os.PathLike, config: dict, architecture: TeacherArchitecture, model: nn.Module) -> None:
    """Every tensor the module needs is in the folder with the shape config.json implies, from the safetensors
    headers alone, so a config/weights mix-up is a one-line error naming the tensor rather than a state_dict
    traceback after the weights were read."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found: dict[str, tuple[str, str, tuple[int, ...]]] = {}
    for file, name, shape in weight_shapes(path):
        try:
            converted = architecture.convert_state_dict(config, {name: torch.empty(shape, device="meta")})
        except KeyError:  # a tensor this architecture does not use (old buffers, extra heads)
            continue
        except RuntimeError:  # e.g. a fused qkv that cannot be split into config.json's heads
            raise LETConfigError(
                f"let.teacher_path='{path}': {file} tensor '{name}' has shape {list(shape)}, which config.json's "
                "sizes cannot hold; config.json and the weights are from different models"
            ) from None
        found.update({key: (file, name, tuple(value.shape)) for key, value in converted.items()})
    missing = [key for key in expected if key not in found]
    if missing:
        raise LETConfigError(
            f"let.teacher_path='{path}': the weight files lack {len(missing)} tensor(s) config.json requires, first "
            f"'{missing[0]}' of shape {list(expected[missing[0]])}; the weights are incomplete or of another model"
        )
    for key, shape in expected.items():
        file, name, got = found[key]
        if got != shape:
            raise LETConfigError(
                f"let.teacher_path='{path}': {file} tensor '{name}' has shape {list(got)} but config.json implies "
                f"{list(shape)}; config.json and the weights are from different models"
            )


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
    model = build_meta_teacher(config, architecture, options, dtype)
    check_weights(path, config, architecture, model)
    state_dict = architecture.convert_state_dict(config, load_hf_state_dict(path))
    # Blocks after the requested layer (and the LM head of tied checkpoints) are not in the module.
    wanted = model.state_dict().keys()
    state_dict = {key: value for key, value in state_dict.items() if key in wanted}
    model.to_empty(device=device)
    model.load_state_dict(state_dict, strict=True)
    model.init_buffers()
    model.eval().requires_grad_(False)
    return model
