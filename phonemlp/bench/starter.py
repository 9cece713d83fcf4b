"""The starter notebook's training loop, the bench's reference: scripts/starter_baseline.py of
the source checkout (development tooling, not part of the installed package)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import phonemlp

NOT_FOUND = (
    "scripts/starter_baseline.py is not beside the package (an installed wheel); "
    "the starter loop runs from a source checkout"
)


def starter_script() -> Path | None:
    """scripts/starter_baseline.py of the source tree phonemlp is imported from; None when
    phonemlp is installed without its sources."""
    path = Path(phonemlp.__file__).resolve().parents[1] / "scripts" / "starter_baseline.py"
    return path if path.is_file() else None


@functools.cache
def load_starter(path: Path) -> ModuleType:
    """The starter script imported as a module (it does not import phonemlp)."""
    spec = importlib.util.spec_from_file_location("starter_baseline", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
