"""Checkpoints: what they hold, atomic saving, and safe loading (weights_only)."""

from __future__ import annotations

import json
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from phonemlp.atomic import atomic_path, write_text
from phonemlp.errors import PhonemlpError

log = logging.getLogger("phonemlp")

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


def unfinished_run_like(run_dir: Path, overrides: list[str]) -> Path | None:
    """The newest run beside this one (same outputs tree) with the same overrides, not finished.

    A run is unfinished when it has checkpoints/last.pt but no summary.json and was not
    continued elsewhere (continued.json, written by the run that resumed it).
    """
    import yaml

    tree = run_dir.parents[1] if len(run_dir.parents) > 1 else run_dir.parent
    candidates = []
    for last in [*tree.glob("*/*/checkpoints/last.pt"), *tree.glob("*/checkpoints/last.pt")]:
        folder = last.parents[1]
        recorded = folder / ".hydra" / "overrides.yaml"
        done = (folder / "summary.json").exists() or (folder / "continued.json").exists()
        if folder == run_dir or done or not recorded.is_file():
            continue
        recorded_overrides = yaml.safe_load(recorded.read_text()) or []
        theirs = [o for o in recorded_overrides if not str(o).startswith("resume=")]
        if sorted(theirs) == sorted(overrides):
            candidates.append((last.stat().st_mtime, folder))
    return max(candidates)[1] if candidates else None


def find_resume(resume: str | None, run_dir: Path, overrides: list[str]) -> Path | None:
    """The checkpoint or run folder `resume=` names (`auto`: the newest unfinished run in the
    same outputs tree with the same overrides), or None to start afresh."""
    if not resume:
        return None
    if resume != "auto":
        return Path(resume).expanduser()
    found = unfinished_run_like(run_dir, overrides)
    log.info(
        f"resume=auto: continuing {found}"
        if found
        else "resume=auto: no unfinished run with the same overrides; starting afresh"
    )
    return found


def adopt_run(source: Path, run_dir: Path) -> None:
    """Continue run `source` (a folder or its .pt) in another folder `run_dir`: mark the source
    continued, and bring over its best.pt (the best epoch may predate the resume)."""
    source = source.resolve()
    source = source if source.is_dir() else source.parent.parent
    if source == run_dir.resolve():
        return
    if (source / ".hydra").is_dir():
        write_text(source / "continued.json", json.dumps({"continued_in": str(run_dir)}) + "\n")
    best_before = source / "checkpoints" / "best.pt"
    if best_before.is_file():
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        with atomic_path(run_dir / "checkpoints" / "best.pt") as temporary:
            temporary.write_bytes(best_before.read_bytes())


class Checkpoints:
    """A run's checkpoints/ folder. Each file holds what prediction needs (`static`: context,
    classes, widths, normalisation, config) and the trainer's whole state, and is written only
    when the loss, the weights and the EMA are finite."""

    def __init__(self, folder: Path, static: dict[str, Any]) -> None:
        self.folder = folder
        self.static = static
        folder.mkdir(parents=True, exist_ok=True)

    def save(self, name: str, trainer: Any) -> None:
        trainer.check_finite(trainer.latest_loss())
        path = self.folder / name
        try:
            save_checkpoint(path, {**self.static, **trainer.state_dict()})
        except OSError as error:
            raise PhonemlpError(
                f"{path}: could not be written ({error.strerror or error}); the previous "
                "checkpoint there is intact; free disk space and resume from it"
            ) from None
