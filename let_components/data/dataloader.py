"""The training dataloader of both token alignments: torchtitan's ParallelAwareDataloader, made to say what the
data-parallel split of a stream costs, and to refuse a data position it cannot continue.

Why refuse at another data-parallel degree: a rank's saved state is its position in its own part of the data (the
files it was handed, every n-th document of a stream whose files do not divide among the ranks, or a contiguous
block of a map-style dataset) plus the tokens it had buffered. At another degree the parts are cut differently and
no saved position says which documents of a new part were read already; merging or splitting them would silently
repeat or skip data. torchtitan asserts (fewer ranks) or DCP fails on a missing key (more ranks); here it is one line
before training, naming both ways out: resume at the saved degree, or restart the stream deliberately.
"""

import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch.distributed.checkpoint as dcp
from datasets import IterableDataset
from torchtitan.components.checkpoint import DATALOADER  # the CheckpointManager key of the dataloader state
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.config import JobConfig
from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataset
from torchtitan.tools.logging import logger

from ..config import LETConfigError, latest_checkpoint_step


def shard_count(dataset: Any) -> int | None:
    """A streamed dataset's shard (file) count before the data-parallel split; None: map-style."""
    data = getattr(dataset, "_data", None)  # torchtitan's HuggingFaceTextDataset keeps its split data here
    # the split dataset's n_shards counts this rank's shards when they divide; its examples iterable holds them all
    return data._ex_iterable.num_shards if isinstance(data, IterableDataset) else None


def uneven_shards_warning(name: str, shards: int, dp_world_size: int) -> str | None:
    """The start-up line when a stream's shards do not divide among the ranks (None when they do)."""
    if dp_world_size == 1 or shards % dp_world_size == 0:
        return None
    multiple = -(-shards // dp_world_size) * dp_world_size
    return (
        f"[data] {name}: its {shards} shards do not divide among {dp_world_size} data-parallel ranks, so every rank "
        f"reads all {shards} and keeps every {dp_world_size}th document ({dp_world_size}x the reading and "
        f"decompression of its share); reshard a local copy to a multiple of {dp_world_size}: python -m "
        f"recipes.assets.reshard_data --input DIR --out NEW_DIR --shards {multiple} (docs/running.md#data)"
    )


def other_degree_error(saved: int, now: int, where: str) -> LETConfigError:
    return LETConfigError(
        f"data-parallel degree {now} (parallelism.data_parallel_*_degree x nodes): {where} holds the data positions "
        f"of {saved} data-parallel ranks, which cannot be cut again for {now}; resume with {saved} data-parallel "
        f'ranks, or set checkpoint.exclude_from_loading = ["{DATALOADER}"] (--checkpoint.exclude_from_loading '
        f"{DATALOADER}) to restart the data stream from its start (weights, optimizer and step resume; documents "
        "trained on before are read again)"
    )


class TextDataloader(ParallelAwareDataloader):
    """ParallelAwareDataloader (same state, same iteration) that warns at start when a stream's shards do not
    divide among the data-parallel ranks, refuses more than one worker over a map-style dataset (each worker would
    read all of it), and refuses in one line a state saved at another data-parallel degree or by another kind of
    dataset."""

    def __init__(self, dataset: HuggingFaceTextDataset, dp_rank: int, dp_world_size: int, **kwargs: Any):
        shards = shard_count(dataset)
        workers = kwargs.get("num_workers", 0)
        if shards is None and workers > 1:
            raise LETConfigError(
                f"training.dataloader.num_workers={workers}: dataset '{dataset.dataset_name}' is map-style and every "
                "worker would read all of it (each window once per worker); use 0 or 1, or a streamed dataset"
            )
        super().__init__(dataset, dp_rank=dp_rank, dp_world_size=dp_world_size, **kwargs)
        warning = uneven_shards_warning(dataset.dataset_name, shards, dp_world_size) if shards else None
        if warning and dp_rank == 0:
            logger.warning(warning)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            saved = state_dict.get("world_size")
            if saved != self.dp_world_size or self._rank_id not in state_dict:
                raise other_degree_error(saved, self.dp_world_size, "the checkpoint")
            self._check_same_kind(pickle.loads(state_dict[self._rank_id]))
        super().load_state_dict(state_dict)

    def _check_same_kind(self, state: dict[str, Any]) -> None:
        """A map-style dataset saves its position as a document index, a stream as its shard position: a
        dataset switched from one to the other (local_files streams since it reads compressed shards) cannot
        resume the other's position."""
        streamed = shard_count(self.dataset) is not None
        for saved in _dataset_states(state):
            if ("data" in saved) != streamed:
                kinds = ("map-style", "streamed")
                raise LETConfigError(
                    f"dataset '{self.dataset.dataset_name}': the checkpoint holds a {kinds[not streamed]} data "
                    f"position, this run reads the dataset {kinds[streamed]}; set checkpoint.exclude_from_loading = "
                    f'["{DATALOADER}"] to restart its data stream from the start'
                )


def _dataset_states(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every dataset state in a StatefulDataLoader state (one in the main process, one per worker)."""
    found = []
    for key, value in state.items():
        if isinstance(value, dict):
            found += [value] if key == "dataset_state" else _dataset_states(value)
    return found


def saved_degree(checkpoint: Path) -> int | None:
    """The data-parallel degree whose dataloader states a DCP checkpoint folder holds (None: none there), from its
    metadata alone: one `dataloader.dp_rank_<r>` entry per rank."""
    if not (checkpoint / ".metadata").is_file():
        return None
    keys = dcp.FileSystemReader(str(checkpoint)).read_metadata().state_dict_metadata
    return sum(key.startswith(f"{DATALOADER}.dp_rank_") for key in keys) or None


def check_resumable(job_config: JobConfig, dp_world_size: int) -> None:
    """Before training: the checkpoint this job resumes from holds data positions for this data-parallel degree
    (or its dataloader is not loaded)."""
    if DATALOADER in job_config.checkpoint.exclude_from_loading:
        return
    step = latest_checkpoint_step(job_config)
    if step <= 0:
        return
    folder = Path(job_config.job.dump_folder) / job_config.checkpoint.folder / f"step-{step}"
    saved = saved_degree(folder)
    if saved is not None and saved != dp_world_size:
        raise other_degree_error(saved, dp_world_size, f"checkpoint {folder}")


def text_dataloader(
    dataset: HuggingFaceTextDataset, dp_rank: int, dp_world_size: int, job_config: JobConfig
) -> TextDataloader:
    """A training dataset in TextDataloader with torchtitan's [training.dataloader] settings and local batch size,
    after the resume check."""
    check_resumable(job_config, dp_world_size)
    kwargs = {**asdict(job_config.training.dataloader), "batch_size": job_config.training.local_batch_size}
    return TextDataloader(dataset, dp_rank=dp_rank, dp_world_size=dp_world_size, **kwargs)


def build_text_dataloader(
    dp_world_size: int, dp_rank: int, tokenizer: BaseTokenizer, job_config: JobConfig, infinite: bool = True
) -> TextDataloader:
    """torchtitan's build_text_dataloader (same dataset, same windows) in TextDataloader."""
    training = job_config.training
    dataset = HuggingFaceTextDataset(
        training.dataset, training.dataset_path, tokenizer, training.seq_len, dp_rank, dp_world_size, infinite
    )
    return text_dataloader(dataset, dp_rank, dp_world_size, job_config)
