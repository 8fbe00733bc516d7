"""What the recipes share: the JobConfig a run would use, parsed by torchtitan's own parser, and the student a
config and a checkpoint describe. One copy here, so no probe imports another."""

import argparse
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torchtitan.config import ConfigManager, JobConfig
from torchtitan.protocols.model import BaseModelArgs
from torchtitan.protocols.train_spec import TrainSpec, get_train_spec

import let_components  # noqa: F401  (registers the datasets and the student TrainSpecs)
from let_components.teacher import TeacherModel, TeacherOptions, teacher_source
from let_components.tokens import token_alignment


def parse_job_config(config_file: str, overrides: Sequence[str] = ()) -> JobConfig:
    """As `./run_train.sh --job.config_file CONFIG_FILE OVERRIDES...` would train ([let] and [student] included)."""
    return ConfigManager().parse_args(["--job.config_file", config_file, *overrides])


def probe_parser(description: str, checkpoint: bool = False, teacher: bool = False) -> argparse.ArgumentParser:
    """A probe's command line: --config (the run's TOML; any `--section.key value` among the arguments overrides
    it, as on run_train.sh), and where asked --checkpoint and --teacher."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if checkpoint:
        parser.add_argument("--checkpoint", required=True, type=Path,
                            help="a student DCP folder: DIR/checkpoint/step-N")
    parser.add_argument("--config", required=True, help="the run's TOML (spec, flavor, data, [let])")
    if teacher:
        parser.add_argument("--teacher", help="teacher folder (default: the config's let.teacher_path)")
    return parser


def parse_probe(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None,
                overrides: Sequence[str] = ()) -> tuple[argparse.Namespace, JobConfig]:
    """The probe's arguments and the run's JobConfig: the TOML, the config overrides among the arguments, --teacher
    (as let.teacher_path) and the probe's own `overrides`, in that order."""
    args, config_overrides = parser.parse_known_args(argv)
    if getattr(args, "teacher", None):
        config_overrides += ["--let.teacher_path", args.teacher]
    return args, parse_job_config(args.config, [*config_overrides, *overrides])


def run_teacher(job_config: JobConfig, max_seq_len: int | None = None, layer: int | None = None) -> TeacherModel:
    """The run's teacher as training builds it - its source (folder or the job's copy, let.teacher_backend), the
    run's layer and window (the token alignment's) unless the probe asks for others - on the CPU in float32."""
    source = teacher_source(job_config)
    length = max_seq_len or token_alignment(job_config).teacher_seq_len(job_config)
    options = TeacherOptions(layer=job_config.let.teacher_layer if layer is None else layer, max_seq_len=length)
    return source.load("cpu", torch.float32, options)


def student_args(job_config: Any) -> tuple[TrainSpec, BaseModelArgs]:
    """The config's student spec and its model args as the trainer builds them (update_from_config: the
    tokenizer's vocabulary, the projection width), a copy of the flavor's."""
    spec = get_train_spec(job_config.model.name)
    args = copy.deepcopy(spec.model_args[job_config.model.flavor])
    args.update_from_config(job_config)
    return spec, args


def initialised_student(job_config: Any, seed: int = 0, **model_args: Any) -> torch.nn.Module:
    """The config's student on CPU in float32: meta -> CPU -> init_weights, as torchtitan's Trainer builds it.

    model_args: set after the config's, e.g. the vocabulary and projection width a checkpoint was trained with.
    """
    spec, args = student_args(job_config)
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
