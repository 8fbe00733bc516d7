"""Reshard a local copy of a text dataset (.jsonl, .jsonl.gz or .jsonl.zst files) into N shards, so that each
data-parallel rank reads only its own: a stream hands out whole files only when their count is a multiple of the
data-parallel degree; otherwise every rank reads (and decompresses) all of them and keeps every n-th document.

    python -m recipes.assets.reshard_data --input /data/pile/train --out /data/pile-240/train --shards 240
    ln -s /data/pile/val.jsonl.zst /data/pile-240/   # then training.dataset_path = "/data/pile-240"

Choose N as a multiple of every data-parallel degree the job may run at (a restart on fewer nodes included; 240
divides among 8, 16, 24, 40, 48 or 80 GPUs), and at least the degree times training.dataloader.num_workers (a
stream's files are also what its workers share). Every document is kept once, its line byte for byte (its "text"
and whatever else the record holds); each goes to the shard with the fewest bytes so far, so the shards end within
one document of each other. Each record is checked on the way (one line naming the file and line of a bad one), so
bad data shows here rather than mid-training. Shards are written as NAME.partial and renamed when all are complete.
"""

import argparse
import gzip
import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from let_components.config import LETConfigError
from let_components.data.files import data_files, json_records

COMPRESSIONS = {"zst": ".jsonl.zst", "gz": ".jsonl.gz", "none": ".jsonl"}


@dataclass
class Shard:
    path: Path
    writer: BinaryIO
    documents: int = 0
    bytes: int = 0
    """Uncompressed: the balance is of text, which is what the ranks tokenize."""


def _open(path: Path, compression: str, level: int) -> BinaryIO:
    if compression == "zst":
        return zstandard.ZstdCompressor(level=level).stream_writer(open(path, "wb"))
    if compression == "gz":
        return gzip.GzipFile(path, "wb", compresslevel=min(level, 9), mtime=0)
    return open(path, "wb")


def input_files(source: str) -> list[Path]:
    files = data_files(source, "--input")
    plain_json = [f for f in files if f.name.endswith(".json")]
    if plain_json or not all(f.name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst")) for f in files):
        raise LETConfigError(f"--input='{source}': reshards .jsonl, .jsonl.gz and .jsonl.zst files only "
                             f"(found {(plain_json or files)[0].name})")
    return files


def reshard(inputs: list[Path], out: Path, shards: int, compression: str = "zst", level: int = 3) -> list[Shard]:
    """Every record of the inputs into `shards` files in out/ (which must be empty), balanced by bytes."""
    if shards < 1:
        raise LETConfigError(f"--shards={shards}: at least 1")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise LETConfigError(f"--out='{out}': not empty; reshard into a new folder")
    width = max(2, len(str(shards - 1)))
    names = [out / f"{i:0{width}d}{COMPRESSIONS[compression]}" for i in range(shards)]
    partial = [name.with_name(name.name + ".partial") for name in names]
    written = [Shard(name, _open(part, compression, level)) for name, part in zip(names, partial, strict=True)]
    smallest = [(0, i) for i in range(shards)]
    try:
        for file in inputs:
            for raw, _text in json_records(file):
                _, i = heapq.heappop(smallest)
                shard = written[i]
                shard.writer.write(raw + b"\n")
                shard.documents += 1
                shard.bytes += len(raw) + 1
                heapq.heappush(smallest, (shard.bytes, i))
    except BaseException:  # a bad record or an interrupt: nothing half-written stays behind
        for shard, part in zip(written, partial, strict=True):
            shard.writer.close()
            part.unlink()
        raise
    for shard in written:
        shard.writer.close()
    # renamed only once all are whole: an interrupted run leaves no file a dataset would read
    for shard, part in zip(written, partial, strict=True):
        part.rename(shard.path)
    return written


def main(argv: list[str] | None = None) -> list[Shard]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="a file, a folder of files or a glob (quoted)")
    parser.add_argument("--out", type=Path, required=True, help="a new (or empty) folder for the shards")
    parser.add_argument("--shards", type=int, required=True, help="how many: a multiple of the data-parallel degree")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="zst")
    parser.add_argument("--level", type=int, default=3, help="zstd (or gzip, up to 9) compression level")
    args = parser.parse_args(argv)
    try:
        inputs = input_files(args.input)
        written = reshard(inputs, args.out, args.shards, args.compression, args.level)
    except LETConfigError as error:
        raise SystemExit(f"reshard_data: {error}") from None
    sizes = [shard.bytes for shard in written]
    divides = [d for d in range(1, args.shards + 1) if args.shards % d == 0]
    print(f"{sum(s.documents for s in written):,} documents from {len(inputs)} files -> {args.shards} shards in "
          f"{args.out} ({min(sizes):,} to {max(sizes):,} bytes of text each)")
    print(f"each rank reads only its own shards at a data-parallel degree of {', '.join(map(str, divides))}")
    return written


if __name__ == "__main__":
    main()
