"""Build the out-of-domain text: non-technical English prose (quotations, aphorisms, anecdotes) from Debian's fortunes.

    python -m recipes.assets.build_ood_data --out outputs/replication/ood --download   # apt-get download + dpkg-deb -x
    python -m recipes.assets.build_ood_data --out outputs/replication/ood --fortunes /usr/share/games/fortunes

Why: the replication's teacher and students learn from the CPython documentation, and every comparison so far is
on held-out text of the same kind; related work finds distillation's gains appear first out of domain. The
`fortunes` package (BSD fortune's data files) is English prose on everything but computers. Only the files in FILES
are read (no computers, linux, perl, science, definitions, ascii-art, ...): about 590 kB of text.

Writes ood.jsonl (one document per fortune: {"text", "source": "FILE#N"}, N the fortune's index in its file), the
package's copyright file (its licence asks that the notice travels with the text) and build_info.json. Deterministic:
files in FILES order, fortunes in file order, exact repeats and non-prose (short lines of symbols) dropped.
Licence (the package's /usr/share/doc/fortunes/copyright): BSD, Copyright (c) 1991 The Regents of the University of
California, with the advertising clause deleted.
"""

import argparse
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

PACKAGE = "fortunes"
INSTALLED = Path("/usr/share/games/fortunes")
COPYRIGHT = Path("usr/share/doc/fortunes/copyright")
LICENCE = "BSD (Copyright (c) 1991 The Regents of the University of California; advertising clause deleted)"
FILES = ("art", "education", "food", "humorists", "kids", "love", "people", "pets", "platitudes", "sports",
         "wisdom", "work")
"""The package's non-technical files."""
MIN_CHARS = 40
"""Shorter fortunes are mostly one-liners that carry little context."""
MIN_LETTERS = 0.6
"""Share of the non-space characters that must be letters: drops drawings and tables."""


def parse_fortunes(text: str) -> list[str]:
    """The fortunes of one strfile source: texts separated by lines holding only '%' (trailing spaces removed)."""
    fortunes, lines = [], []
    for line in [*text.splitlines(), "%"]:
        if line.strip() == "%":
            fortune = "\n".join(lines).strip("\n")
            if fortune.strip():
                fortunes.append(fortune)
            lines = []
        else:
            lines.append(line.rstrip())
    return fortunes


def is_prose(fortune: str) -> bool:
    visible = [c for c in fortune if not c.isspace()]
    return len(fortune) >= MIN_CHARS and sum(c.isalpha() for c in visible) >= MIN_LETTERS * len(visible)


def documents(folder: Path, files: Sequence[str] = FILES) -> Iterator[dict[str, str]]:
    """{"text", "source"} per kept fortune, in order; a text seen before (in any file) is not repeated."""
    seen: set[str] = set()
    for name in files:
        path = folder / name
        if not path.is_file():
            raise SystemExit(f"--fortunes {folder}: no file '{name}' there; expected the {PACKAGE} package's data "
                             f"files ({', '.join(files)})")
        for index, fortune in enumerate(parse_fortunes(path.read_text(encoding="utf-8", errors="replace"))):
            if is_prose(fortune) and fortune not in seen:
                seen.add(fortune)
                yield {"text": fortune, "source": f"{name}#{index}"}


def build(folder: Path, out: Path, version: str, files: Sequence[str] = FILES,
          copyright_file: Path | None = None) -> dict[str, object]:
    """Write ood.jsonl, the copyright file (when given) and build_info.json into `out`; returns build_info."""
    out.mkdir(parents=True, exist_ok=True)
    count = n_bytes = 0
    with open(out / "ood.jsonl", "w", encoding="utf-8") as jsonl:
        for document in documents(folder, files):
            jsonl.write(json.dumps(document) + "\n")
            count += 1
            n_bytes += len(document["text"].encode("utf-8"))
    if copyright_file is not None and copyright_file.is_file():
        shutil.copyfile(copyright_file, out / "copyright")
    info = {"package": PACKAGE, "version": version, "licence": LICENCE, "files": list(files),
            "documents": count, "text_bytes": n_bytes}
    (out / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def download(folder: Path) -> tuple[Path, str, Path]:
    """apt-get download the package into `folder` and unpack it there (nothing is installed): (its fortune files,
    its version, its copyright file)."""
    subprocess.run(["apt-get", "download", "-q", PACKAGE], cwd=folder, check=True)
    deb = next(folder.glob(f"{PACKAGE}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(folder / "root")], check=True)
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True,
                             text=True).stdout.strip()
    return folder / "root" / INSTALLED.relative_to("/"), version, folder / "root" / COPYRIGHT


def installed_version() -> str:
    """The installed package's version, or 'unknown' (a folder copied from elsewhere)."""
    query = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True)
    return query.stdout.strip() if query.returncode == 0 and query.stdout.strip() else "unknown"


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/replication/ood"))
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--fortunes", type=Path, default=INSTALLED,
                        help=f"folder of the package's data files (default {INSTALLED}, the installed package)")
    source.add_argument("--download", action="store_true",
                        help=f"apt-get download {PACKAGE} and unpack it in a temporary folder (needs the network)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        if args.download:
            folder, version, copyright_file = download(Path(scratch))
        else:
            folder, version, copyright_file = args.fortunes, installed_version(), Path("/") / COPYRIGHT
        info = build(folder, args.out, version, copyright_file=copyright_file)
    print(f"{PACKAGE} {info['version']}: {info['documents']} documents, {info['text_bytes']:,} bytes of text -> "
          f"{args.out / 'ood.jsonl'}")
    return info


if __name__ == "__main__":
    main()
