"""Local text files as a stream of documents: which files a path names, and how each kind is read.

A stream is read here rather than by datasets' streaming json/text/parquet builders (which would also make each file
one shard) for what those do not do: bad data raises one line naming the file and line (unreadable, cut short, not
JSON, no "text" string), since an error in the middle of a 300 GB copy must say where it is; and a `.jsonl.zst` cut
inside a zstd frame is an error, where a zstd stream reader ends it silently and its last whole line would pass for
the data's end. zstd windows above the default limit (`zstd --long=31`) are allowed too.
"""

import glob
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import zstandard

from ..config import LETConfigError

KINDS = {".jsonl.zst": "json", ".jsonl.gz": "json", ".jsonl": "json", ".json": "json", ".txt": "text",
         ".parquet": "parquet"}
"""File name ending -> how its documents are read (datasets' builder of the same name for a map-style dataset):
json, records with a "text" string, one per line (a .json file may also hold one array of them); text, one
document per line; parquet, a "text" column."""

CHUNK = 1 << 20
# files written with `zstd --long=31` need windows above zstandard's default limit (128 MiB); the limit only allows,
# a file that does not need it costs nothing more
MAX_ZSTD_WINDOW = 1 << 31


class DataError(LETConfigError):
    """Bad data, in one line naming the file (and line): unreadable, truncated, or a record without a "text" string.

    Raised in a dataloader worker, it reaches the training process re-raised by torch with the worker's traceback as
    its message; the traceback's last line is the message itself, so that is what is kept.
    """

    def __init__(self, message: str):
        if "Original Traceback" in message:  # torch.utils.data's ExceptionWrapper.reraise
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


def kind_of(file: str | Path) -> str | None:
    name = Path(file).name
    return next((kind for ending, kind in KINDS.items() if name.endswith(ending)), None)


def data_files(path: str, key: str) -> list[Path]:
    """The files a path names, sorted: a file, the files directly in a folder, or a glob; one kind only.

    key: the config key or command-line option that set the path, for the error.
    """
    if not path:
        raise LETConfigError(f"{key}='': name a file, folder or glob of {'/'.join(KINDS)} files")
    target = Path(path).expanduser()
    if target.is_dir():
        candidates = sorted(f for f in target.iterdir() if f.is_file())
    elif any(c in path for c in "*?["):
        candidates = sorted(Path(f) for f in glob.glob(str(target)) if Path(f).is_file())
    elif target.is_file():
        candidates = [target]
    else:
        raise LETConfigError(f"{key}='{path}': no such file or folder")
    files = [f for f in candidates if kind_of(f)]
    if not files:
        raise LETConfigError(f"{key}='{path}': no {'/'.join(KINDS)} files there")
    kinds = sorted({kind_of(f) for f in files})
    if len(kinds) > 1:
        raise LETConfigError(f"{key}='{path}': mixes file types {kinds}; use one type")
    return files


def documents(files: list[str]) -> Iterator[dict[str, str]]:
    """{"text": document} for every record of the files, in order (an IterableDataset's generator: one shard per
    file)."""
    for file in files:
        yield from _READERS[kind_of(file)](file)


def raw_lines(file: str | Path) -> Iterator[bytes]:
    """The lines of a (compressed) text file, without their newline; a truncated or corrupt file raises (a
    truncated zstd frame, which the zstd stream reader would end silently, included)."""
    name = str(file)
    chunks = _zstd_chunks(name) if name.endswith(".zst") else _gzip_chunks(name) if name.endswith(".gz") else \
        _plain_chunks(name)
    # a line may span many chunks (a document of several MB): joined once, not re-copied per chunk
    parts: list[bytes] = []
    for chunk in chunks:
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            parts.append(chunk)
            continue
        parts.append(lines[0])
        yield b"".join(parts)
        yield from lines[1:-1]
        parts = [lines[-1]]
    if any(parts):
        yield b"".join(parts)


def _plain_chunks(file: str) -> Iterator[bytes]:
    with open(file, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _gzip_chunks(file: str) -> Iterator[bytes]:
    # read1: what one read of the file gives, so an EOFError (the file cut short) comes after the lines before it
    with gzip.open(file, "rb") as f:
        while chunk := f.read1(CHUNK):
            yield chunk


def _zstd_chunks(file: str) -> Iterator[bytes]:
    """Frame by frame, so that a file cut inside a frame is an error, not a short stream."""
    decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_ZSTD_WINDOW)
    frame = None
    with open(file, "rb") as f:
        while chunk := f.read(CHUNK):
            while chunk:
                frame = frame or decompressor.decompressobj()
                yield frame.decompress(chunk)
                if not frame.eof:
                    break
                chunk, frame = frame.unused_data, None
    if frame is not None:
        raise EOFError("the file ends inside a zstd frame (truncated)")


def _unreadable(file: str, line: int, error: Exception) -> DataError:
    where = f", line {line}" if line else ""
    return DataError(f"{file}{where}: unreadable ({type(error).__name__}: {' '.join(str(error).split())})")


def _record_text(file: str, line: int, raw: bytes | object) -> str:
    try:
        record = json.loads(raw) if isinstance(raw, bytes) else raw
    except ValueError as error:
        raise DataError(f"{file}, line {line}: not a JSON record ({type(error).__name__}: {error})") from error
    text = record.get("text") if isinstance(record, dict) else None
    if not isinstance(text, str):
        found = f"keys {sorted(record)}" if isinstance(record, dict) else f"a {type(record).__name__}"
        raise DataError(f'{file}, line {line}: no "text" string in the record ({found}); every record needs one')
    return text


def _numbered_lines(file: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, the line) for every line of `raw_lines`; a file that cannot be read to its end raises
    DataError naming the file and the line not yet whole."""
    line = 0
    try:
        for raw in raw_lines(file):
            line += 1
            yield line, raw
    except (OSError, EOFError, zstandard.ZstdError) as error:  # reading, not parsing: the line not yet whole
        raise _unreadable(str(file), line + 1, error) from error


def json_records(file: str | Path) -> Iterator[tuple[bytes, str]]:
    """(the line as read, its "text") for every record of a JSON-lines file (blank lines skipped); a file that
    cannot be read to its end or a bad record raises DataError naming the file and line."""
    for line, raw in _numbered_lines(file):
        if raw.strip():
            yield raw, _record_text(str(file), line, raw)


def _json(file: str) -> Iterator[dict[str, str]]:
    """One record per line; a plain .json file may instead hold one JSON array of records (what datasets' json
    builder reads without a `field`)."""
    if file.endswith(".json") and _starts_an_array(file):
        try:
            records = json.loads(Path(file).read_bytes())
        except ValueError as error:
            raise _unreadable(file, 0, error) from error
        for index, record in enumerate(records, 1):
            yield {"text": _record_text(file, index, record)}
        return
    for _, text in json_records(file):
        yield {"text": text}


def _starts_an_array(file: str) -> bool:
    with open(file, "rb") as f:
        return f.read(CHUNK).lstrip()[:1] == b"["


def _txt(file: str) -> Iterator[dict[str, str]]:
    for line, raw in _numbered_lines(file):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _unreadable(file, line, error) from error
        yield {"text": text.removesuffix("\r")}


def _parquet(file: str) -> Iterator[dict[str, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(file)
        if "text" not in table.schema_arrow.names:
            raise DataError(f'{file}: no "text" column (columns {table.schema_arrow.names}); every row needs one')
        row = 0
        for batch in table.iter_batches(columns=["text"]):
            for text in batch.column(0).to_pylist():
                row += 1
                if not isinstance(text, str):
                    raise DataError(f'{file}, row {row}: "text" is {text!r}, not a string')
                yield {"text": text}
    except (OSError, pa.ArrowException) as error:
        raise _unreadable(file, 0, error) from error


_READERS = {"json": _json, "text": _txt, "parquet": _parquet}
