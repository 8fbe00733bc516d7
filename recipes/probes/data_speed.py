"""How fast one data-parallel rank turns .jsonl.zst shards into training windows, against what its GPU consumes:
how many dataloader workers (training.dataloader.num_workers) keep up.

    python -m recipes.probes.data_speed --config train_configs/let_1.4b.toml [--data /data/pile/train/00.jsonl.zst]
        [--seconds 20] [--consume 45000] [overrides such as --let.teacher_path DIR]

Times, in this one process (a dataloader worker does the same work in its own), over the --data files (default: the
bundled sample corpus written as a .jsonl.zst miniature):
  1. decompressing and parsing the records (let_components/data/files.py, as local_files and a local Pile copy read);
  2. plus the student's tokenization and packing: torchtitan's text dataset, the windows training reads;
  3. with let.token_alignment = "bytes", plus the teacher's own tokenization and the byte alignment
     (ByteAlignedTextDataset, as let_bytes_debug.toml and replication_let_smollm2.toml train).
Rates are student tokens per second of one process. The tokenizer is the config's (the teacher's with
token_alignment = "same"): time with the run's own, a 4k-token BPE runs faster than a 150k one. Do not time on a
machine busy with other work.
"""

import argparse
import json
import math
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import zstandard
from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataset

from let_components.data import SAMPLE_CORPUS
from let_components.data.files import data_files, documents
from let_components.teacher import teacher_source
from let_components.tokens import token_alignment
from let_components.tokens.tokenizers import student_tokenizer

from ..common import parse_probe


def miniature(folder: Path) -> Path:
    """The sample corpus's training documents as one .jsonl.zst shard."""
    shard = folder / "00.jsonl.zst"
    shard.write_bytes(zstandard.ZstdCompressor().compress((SAMPLE_CORPUS / "train.jsonl").read_bytes()))
    return shard


def timed(items: Iterable, seconds: float, size=lambda item: 1) -> tuple[float, int]:
    """(seconds, summed size) over the items until they end or `seconds` pass."""
    total, start = 0, time.perf_counter()
    for item in items:
        total += size(item)
        if time.perf_counter() - start > seconds:
            break
    return time.perf_counter() - start, total


def measure(job_config, data: str, seconds: float) -> dict[str, float]:
    """Rates of the three stages over `data` (student tokens/s for 2 and 3)."""
    files = [str(f) for f in data_files(data, "--data")]
    seq_len = job_config.training.seq_len
    teacher, alignment = teacher_source(job_config), token_alignment(job_config)
    tokenizer = student_tokenizer(job_config, teacher)
    elapsed, text_bytes = timed(documents(files), seconds, lambda d: len(d["text"].encode()))
    rates = {"text MB/s": text_bytes / elapsed / 1e6}
    student = HuggingFaceTextDataset("local_files", data, tokenizer, seq_len)
    elapsed, tokens = timed(student, seconds, lambda window: seq_len)
    rates["student tokens/s"] = tokens / elapsed
    if not alignment.one_to_one:
        aligned = alignment.text_dataset(job_config, tokenizer, "local_files", data, seq_len, teacher)
        elapsed, tokens = timed(aligned, seconds, lambda window: seq_len)
        rates["student tokens/s with the teacher side"] = tokens / elapsed
    return rates


def workers_line(rate: float, consume: float, byte_aligned: bool) -> str:
    """How many dataloader workers keep up with `consume` tokens/s at `rate` per process."""
    needed = max(1, math.ceil(consume / rate))
    line = (f"{needed} dataloader worker{'s' if needed > 1 else ''} per rank keep{'s' if needed == 1 else ''} up "
            f"(in the training process, num_workers = 0, it takes {100 * consume / rate:.0f}% of the step's time)")
    if needed > 1 and byte_aligned:
        line += (f"; token_alignment = 'bytes' takes at most 1 worker, so the data path would hold a GPU to "
                 f"{rate:,.0f} tokens/s")
    elif needed > 1:
        line += f"; a stream's workers share its files: at least {needed} shards per rank"
    return line


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="train_configs/let_debug.toml",
                        help="a train config: its tokenizer(s), seq_len and token alignment")
    parser.add_argument("--data", help="a .jsonl.zst file, folder or glob (default: the sample corpus as .jsonl.zst)")
    parser.add_argument("--seconds", type=float, default=20.0, help="longest time per stage")
    parser.add_argument("--consume", type=float, default=45_000.0,
                        help="student tokens/s one GPU trains on (the 1.4B student on one H100: about 45k)")
    parser.add_argument("--json", type=Path, help="also write the rates here")
    args, job_config = parse_probe(parser, argv)
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or str(miniature(Path(scratch)))
        rates = measure(job_config, data, args.seconds)
    source, alignment = args.data or "the sample corpus as .jsonl.zst", token_alignment(job_config)
    print(f"{args.config} ({alignment.describe(job_config)}), seq_len {job_config.training.seq_len}, {source}; "
          "one process:")
    print(f"  decompress + parse         {rates['text MB/s']:10.1f} MB of text/s")
    for stage, rate in rates.items():
        if stage != "text MB/s":
            print(f"  {stage:38s} {rate:12,.0f}")
    print(f"at {args.consume:,.0f} student tokens/s per GPU, "
          + workers_line(min(v for k, v in rates.items() if k != "text MB/s"), args.consume,
                         not alignment.one_to_one))
    if args.json:
        args.json.write_text(json.dumps({"config": args.config, "data": args.data, **rates}, indent=2))
    return rates


if __name__ == "__main__":
    main()
