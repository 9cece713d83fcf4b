"""Checkpoints: what they hold, atomic saving, and safe loading (weights_only)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from phonemlp.atomic import atomic_path
from phonemlp.errors import PhonemlpError

FORMAT = "phonemlp-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Save a checkpoint atomically (the previous file stays intact if this fails)."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def checkpoint_path(path: str | Path, name: str = "last.pt") -> Path:
    """A checkpoint file from a file or a run folder (its checkpoints/<name>)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / name, path / name):
            if candidate.is_file():
                return candidate
        raise PhonemlpError(
            f"{path}: a folder without checkpoints/{name}; give a .pt file or a run folder"
        )
    if not path.is_file():
        raise PhonemlpError(f"{path}: checkpoint not found")
    return path


def load_checkpoint(path: str | Path, name: str = "last.pt") -> dict[str, Any]:
    """Load one of our checkpoints (a file, or a run folder's `name`) without running its code."""
    path = checkpoint_path(path, name)
    if not zipfile.is_zipfile(path):  # torch.save writes a zip; anything else is not ours
        raise PhonemlpError(
            f"{path}: not a readable checkpoint (truncated or not a torch file); "
            "give one written by phonemlp-train"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise PhonemlpError(
            f"{path}: refused: it holds Python objects that could run code when loaded; "
            "only checkpoints written by phonemlp-train are accepted"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PhonemlpError(
            f"{path}: not a readable checkpoint (truncated or not a torch file: {reason})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise PhonemlpError(
            f"{path}: not a phonemlp checkpoint; give one written by phonemlp-train"
        )
    if payload.get("version", 0) > VERSION:
        raise PhonemlpError(f"{path}: written by a newer phonemlp; upgrade phonemlp to read it")
    return payload
