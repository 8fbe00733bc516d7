"""Loading a frozen, forward-only teacher from a Hugging Face-format folder, whatever its architecture."""

import os

import torch
from torch import nn
from torchtitan.tools import utils

from ..config import LETConfigError
from .checkpoint import load_hf_state_dict, read_hf_config, weight_shapes
from .registry import TEACHER_ARCHITECTURES, TeacherArchitecture, TeacherModel, TeacherOptions
from .text import INSTALL
from .transformers_backend import TRANSFORMERS_ARCHITECTURE, transformers_model_types


def teacher_backend(config: dict, path: str | os.PathLike = "", backend: str = "auto") -> str:
    """Which backend builds this config.json's teacher (let.teacher_backend): native where this package has a module
    for its model_type, else transformers; a one-line error naming both when neither can."""
    model_type = config.get("model_type")
    native = model_type in TEACHER_ARCHITECTURES
    if backend == "native" or (backend == "auto" and native):
        if not native:
            raise LETConfigError(
                f"let.teacher_backend='native': model_type {model_type!r} at let.teacher_path='{path}' has no native "
                f"module (native: {sorted(TEACHER_ARCHITECTURES)}); use teacher_backend = 'auto' or 'transformers'"
            )
        return "native"
    known = transformers_model_types()
    if known is None:
        raise LETConfigError(
            f"let.teacher_path='{path}': model_type {model_type!r} has no native module (native: "
            f"{sorted(TEACHER_ARCHITECTURES)}) and the transformers backend is not installed ({INSTALL})"
        )
    if model_type not in known:
        raise LETConfigError(
            f"let.teacher_path='{path}': model_type {model_type!r} is not a supported teacher: neither a native "
            f"module (native: {sorted(TEACHER_ARCHITECTURES)}) nor a causal LM the installed transformers can build"
        )
    return "transformers"


def teacher_architecture(config: dict, path: str | os.PathLike = "", backend: str = "auto") -> TeacherArchitecture:
    """The architecture that builds a config.json's teacher with `backend` (see teacher_backend)."""
    if teacher_backend(config, path, backend) == "native":
        return TEACHER_ARCHITECTURES[config["model_type"]]
    return TRANSFORMERS_ARCHITECTURE


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
    config: dict | None = None,
) -> TeacherModel:
    """Build the teacher on the meta device, then materialise it on `device` straight from safetensors.

    The result is in eval mode with `requires_grad=False` everywhere: LET never trains the teacher. `config`: the
    folder's config.json as its TeacherSource read it (None: read it here).
    """
    config = read_hf_config(path) if config is None else config
    architecture = teacher_architecture(config, path, options.backend)
    model = build_meta_teacher(config, architecture, options, dtype)
    check_weights(path, config, architecture, model)
    if architecture.load is not None:
        return architecture.load(path, config, options, device, dtype).eval().requires_grad_(False)
    state_dict = architecture.convert_state_dict(config, load_hf_state_dict(path))
    # Blocks after the requested layer (and the LM head of tied checkpoints) are not in the module.
    wanted = model.state_dict().keys()
    state_dict = {key: value for key, value in state_dict.items() if key in wanted}
    model.to_empty(device=device)
    model.load_state_dict(state_dict, strict=True)
    model.init_buffers()
    model.eval().requires_grad_(False)
    return model
