"""Reading a Hugging Face-format teacher folder: config.json and safetensors weights.

Only what every architecture needs lives here; each architecture reads its own config keys.
"""

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torchtitan.tools.logging import logger

from ..config import LETConfigError


def read_hf_config(path: str | os.PathLike) -> dict[str, Any]:
    """config.json of a teacher folder, with a one-line error when it is missing."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise LETConfigError(
            f"let.teacher_path='{path}': no config.json there; expected a Hugging Face "
            "model folder (config.json + *.safetensors + tokenizer files)"
        )
    try:
        return json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise LETConfigError(f"let.teacher_path='{path}': config.json is not valid JSON ({error})") from None


TEACHER_CONFIG_COPY = "let_teacher_config.json"
"""config.json of the teacher, kept in the dump folder so a run resumed after stop_step needs no teacher folder."""


def teacher_config(teacher_path: str, dump_folder: str) -> dict[str, Any]:
    """The teacher's config.json, or the copy a previous run of this job left in its dump folder."""
    copy = Path(dump_folder) / TEACHER_CONFIG_COPY
    if not (Path(teacher_path) / "config.json").is_file() and copy.is_file():
        logger.info(f"[LET] let.teacher_path='{teacher_path}' has no config.json; using this job's copy {copy}")
        return json.loads(copy.read_text())
    return read_hf_config(teacher_path)


def keep_teacher_config(teacher_path: str, dump_folder: str) -> None:
    """Write the copy `teacher_config` falls back to (the trainer calls it on rank 0)."""
    config = teacher_config(teacher_path, dump_folder)
    copy = Path(dump_folder) / TEACHER_CONFIG_COPY
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(json.dumps(config, indent=2))


def rope_config(config: dict[str, Any]) -> dict[str, Any]:
    """RoPE settings from either config.json style.

    transformers 4.x writes `rope_theta` + `rope_scaling` (+ `rotary_pct` for GPT-NeoX); 5.x writes one
    `rope_parameters` dict (with `rope_theta`, `rope_type`, `partial_rotary_factor`, scaling keys). Both are
    folded into one dict with keys rope_theta, rope_type and the scaling keys.
    """
    params = dict(config.get("rope_parameters") or {})
    scaling = config.get("rope_scaling") or {}
    merged = {**scaling, **params}
    merged.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    merged["rope_type"] = merged.get("rope_type", merged.get("type", "default"))
    return merged


def weight_files(path: str | os.PathLike) -> list[Path]:
    """The safetensors files of a teacher folder (one file or a sharded index), or a one-line error.

    `*.bin` (pickle) checkpoints are refused rather than unpickled: convert them once with
    transformers' `save_pretrained(..., safe_serialization=True)`.
    """
    folder = Path(path)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return [folder / shard for shard in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    if any(folder.glob("*.bin")):
        raise LETConfigError(
            f"let.teacher_path='{path}': only *.bin weights found; convert them to safetensors once "
            "(AutoModel.from_pretrained(p).save_pretrained(p, safe_serialization=True))"
        )
    raise LETConfigError(f"let.teacher_path='{path}': no model.safetensors or model.safetensors.index.json")


def load_hf_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a teacher folder."""
    state_dict: dict[str, torch.Tensor] = {}
    for shard in weight_files(path):
        state_dict.update(load_file(shard))
    return state_dict


def strip_prefix(state_dict: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Drop a leading `model.`/`gpt_neox.`-style prefix so base-model and *ForCausalLM folders both load."""
    out = {}
    for key, value in state_dict.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    return out
