"""What the recipes share: the JobConfig a run would use, parsed by torchtitan's own parser, and the student a
config and a checkpoint describe. One copy here, so no probe imports another."""

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torchtitan.config import ConfigManager, JobConfig
from torchtitan.protocols.train_spec import get_train_spec

import let_components  # noqa: F401  (registers the datasets and the student TrainSpecs)


def parse_job_config(config_file: str, overrides: Sequence[str] = ()) -> JobConfig:
    """As `./run_train.sh --job.config_file CONFIG_FILE OVERRIDES...` would train ([let] and [student] included)."""
    return ConfigManager().parse_args(["--job.config_file", config_file, *overrides])


def initialised_student(job_config: Any, seed: int = 0, **model_args: Any) -> torch.nn.Module:
    """The config's student on CPU in float32: meta -> CPU -> init_weights, as torchtitan's Trainer builds it.

    model_args: set after the config's, e.g. the vocabulary and projection width a checkpoint was trained with.
    """
    spec = get_train_spec(job_config.model.name)
    args = copy.deepcopy(spec.model_args[job_config.model.flavor])
    args.update_from_config(job_config)
    for name, value in model_args.items():
        setattr(args, name, value)
    with torch.device("meta"):
        model = spec.model_cls(args)
    model.to_empty(device="cpu")
    torch.manual_seed(seed)
    with torch.no_grad():
        model.init_weights(buffer_device=torch.device("cpu"))
    return model.eval()


def checkpoint_metadata(checkpoint: str | Path) -> dict[str, Any]:
    """Tensor name -> DCP metadata (size, dtype) of a checkpoint folder (DIR/checkpoint/step-N); reads no tensor."""
    return dcp.FileSystemReader(str(checkpoint)).read_metadata().state_dict_metadata


def student_vocab_size(metadata: dict[str, Any]) -> int:
    """The vocabulary the checkpoint's student was trained with: the rows of its token embedding (the tokenizer's
    size, which a config or flavor does not fix)."""
    return metadata["tok_embeddings.weight"].size[0]


def load_student(job_config: Any, checkpoint: Path) -> torch.nn.Module:
    """The checkpoint's student on CPU in float32: spec and flavor from the config, vocabulary and projection width
    from the checkpoint itself (a baseline has no `let_projection`)."""
    metadata = checkpoint_metadata(checkpoint)
    projection = metadata.get("let_projection.weight")
    model = initialised_student(
        job_config, vocab_size=student_vocab_size(metadata),
        projection_dim=projection.size[0] if projection is not None else 0,
    )
    # only the model's tensors are read (in place), whether the checkpoint is model-only or full
    state_dict = model.state_dict()
    missing = sorted(set(state_dict) - set(metadata))
    if missing:
        raise ValueError(f"{checkpoint}: no {', '.join(missing[:3])}: not a checkpoint of this config's student")
    dcp.load(state_dict, checkpoint_id=str(checkpoint))
    return model
