"""Reading a Hugging Face-format teacher folder: config.json and safetensors weights.

Only what every architecture needs lives here; each architecture reads its own config keys.
"""

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from ..config import LETConfigError, LETRuntimeError


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
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            raise LETConfigError(
                f"let.teacher_path='{path}': {index.name} is not a valid shard index ({_one_line(error)}); "
                "it must be JSON with a 'weight_map' of tensor name -> shard file"
            ) from None
        return [folder / shard for shard in shards]
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    if any(folder.glob("*.bin")):
        raise LETConfigError(
            f"let.teacher_path='{path}': only *.bin weights found; convert them to safetensors once "
            "(AutoModel.from_pretrained(p).save_pretrained(p, safe_serialization=True))"
        )
    raise LETConfigError(f"let.teacher_path='{path}': no model.safetensors or model.safetensors.index.json")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def open_weights(path: str | os.PathLike, file: Path):
    """safe_open of one weight file; a missing, truncated or garbled file is a one-line error naming it.

    safetensors checks on open that the header's offsets cover the file exactly, so truncation shows here,
    before a byte of weights is read."""
    if not file.is_file():
        raise LETConfigError(
            f"let.teacher_path='{path}': {file.name} is missing (named by model.safetensors.index.json); "
            "re-download the teacher"
        )
    try:
        return safe_open(file, framework="pt")
    except (SafetensorError, OSError) as error:
        raise LETConfigError(
            f"let.teacher_path='{path}': {file.name} is not a readable safetensors file ({_one_line(error)}); "
            "it is truncated or corrupt: re-download or re-export the teacher"
        ) from None


def weight_shapes(path: str | os.PathLike) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """(file name, tensor name, shape) of every tensor, read off the safetensors headers: no weight is loaded,
    so a 1B teacher's shapes are checked in milliseconds before training starts."""
    for file in weight_files(path):
        with open_weights(path, file) as weights:
            for name in weights.keys():
                yield file.name, name, tuple(weights.get_slice(name).get_shape())


def check_finite(path: str | os.PathLike, file: str, name: str, tensor: torch.Tensor) -> None:
    """A NaN or inf in a teacher weight would reach the student through the alignment term at step 1."""
    if not tensor.is_floating_point():
        return
    bad = ~torch.isfinite(tensor)
    if bad.any():
        kinds = "/".join(kind for kind, hit in (("nan", tensor.isnan().any()), ("inf", tensor.isinf().any())) if hit)
        raise LETConfigError(
            f"let.teacher_path='{path}': {file} tensor '{name}' holds {int(bad.sum())} non-finite value(s) ({kinds}); "
            "the checkpoint is corrupt: re-download or re-export the teacher"
        )


def load_hf_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a teacher folder, each checked to be finite."""
    state_dict: dict[str, torch.Tensor] = {}
    for shard in weight_files(path):
        with open_weights(path, shard) as weights:
            for name in weights.keys():
                tensor = weights.get_tensor(name)
                check_finite(path, shard.name, name, tensor)
                state_dict[name] = tensor
    return state_dict


TEACHER_FINGERPRINT = "let_teacher_fingerprint.json"
"""What the teacher folder held when the run started, in its dump folder: a resume compares against it."""


def teacher_fingerprint(path: str | os.PathLike) -> dict[str, str]:
    """file name -> size and sha256 of config.json and of each weight file.

    The whole content, not the header: another checkpoint of the same architecture has the same header, and a
    fine-tune may change only some tensors. A copied or moved folder keeps it (no mtimes).
    """
    fingerprint = {}
    for file in [Path(path) / "config.json", *weight_files(path)]:
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
        fingerprint[file.name] = f"{file.stat().st_size} bytes sha256:{digest.hexdigest()}"
    return fingerprint


def check_teacher_unchanged(teacher_path: str, dump_folder: str) -> None:
    """A run resumed while its teacher teaches must be taught by the teacher it started with: a changed folder stops
    the run (LETRuntimeError: the folder is readable, but it is no longer this run's teacher)."""
    record = Path(dump_folder) / TEACHER_FINGERPRINT
    if not record.is_file():
        return
    recorded, now = json.loads(record.read_text()), teacher_fingerprint(teacher_path)
    changed = sorted(name for name in recorded.keys() | now.keys() if recorded.get(name) != now.get(name))
    if changed:
        raise LETRuntimeError(
            f"let.teacher_path='{teacher_path}': {', '.join(changed)} changed since this run started "
            f"(recorded in {record}); point let.teacher_path at the original teacher, or delete {record} to resume "
            "with this one deliberately"
        )


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
