"""Build the replication corpus: the full CPython 3.11 documentation (reST sources) from Debian's python3.11-doc.

About 11 MB of real English technical prose (~3M tokens with the project tokenizer), four times the bundled sample
corpus, so the small-scale replication's teacher learns the language rather than memorising one file.

    python -m recipes.assets.build_replication_data --out outputs/replication/data [--install]
"""

import argparse
import hashlib
import json
import re
import subprocess
from pathlib import Path

PACKAGE = "python3.11-doc"
SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
VALIDATION_EVERY = 40  # ~2.5% of the files, chosen by a hash of their path

_UNDERLINE = re.compile(r"^\s*([=\-~^*+#\"'`.:_])\1{3,}\s*$")
_ROLE = re.compile(r":[\w:-]+:`(?:[^`<]*<)?([^`>]+)>?`")


def ensure_sources(install: bool) -> None:
    """The reST sources ship in Debian's python3.11-doc; install it (as root) when asked."""
    if SOURCES.is_dir():
        return
    if not install:
        raise SystemExit(f"{SOURCES} not found: run with --install (apt-get install {PACKAGE}) or install it yourself")
    subprocess.run(["apt-get", "install", "-y", "-q", PACKAGE], check=True)


def clean(text: str) -> str:
    """Drop heading underlines and reST comment/directive lines; keep role text (:func:`len` -> len)."""
    lines = []
    for line in text.splitlines():
        if _UNDERLINE.match(line) or line.lstrip().startswith(".. "):
            continue
        lines.append(_ROLE.sub(r"\1", line).replace("``", ""))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def is_validation(name: str) -> bool:
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % VALIDATION_EVERY == 0


def build(out: Path) -> dict[str, dict[str, int]]:
    out.mkdir(parents=True, exist_ok=True)
    stats = {split: {"documents": 0, "bytes": 0} for split in ("train", "validation")}
    files = {split: open(out / f"{split}.jsonl", "w") for split in stats}
    for path in sorted(SOURCES.rglob("*.txt")):
        name = str(path.relative_to(SOURCES))
        text = clean(path.read_text(errors="replace"))
        if len(text) < 200:
            continue
        split = "validation" if is_validation(name) else "train"
        line = json.dumps({"text": text, "source": name}) + "\n"
        files[split].write(line)
        stats[split]["documents"] += 1
        stats[split]["bytes"] += len(line.encode())
    for f in files.values():
        f.close()
    (out / "build_info.json").write_text(json.dumps({"package": PACKAGE, "sources": str(SOURCES), **stats}, indent=2))
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/replication/data"))
    parser.add_argument("--install", action="store_true", help=f"apt-get install {PACKAGE} if it is missing")
    args = parser.parse_args()
    ensure_sources(args.install)
    for split, numbers in build(args.out).items():
        print(f"{split}: {numbers['documents']} documents, {numbers['bytes']:,} bytes -> {args.out / split}.jsonl")


if __name__ == "__main__":
    main()
