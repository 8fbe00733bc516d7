"""Shared test helpers, by subject: teachers (tiny Hugging Face checkpoints), tokenizers, training runs, their logs
and job configs."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
