"""Search spaces: conf/search/<name>.yaml, one distribution per phonemlp-train key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from phonemlp.errors import PhonemlpError

TYPES = ("float", "int", "categorical")
SYNTAX = "see the syntax at the top of conf/search/default.yaml"


@dataclass(frozen=True)
class Param:
    """One searched key and its distribution."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The trial's value for this key (Optuna's suggest_* under the key's name)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(
                self.key, self.low, self.high, step=self.step or 1, log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> dict[str, Any]:
        """The entry as in the YAML file (kept with the study, to notice a changed space)."""
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        entry = {"type": self.type, "low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            entry["step"] = self.step
        return entry


def override(key: str, value: Any) -> str:
    """A sampled value as a phonemlp-train override."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif value is None:
        text = "null"
    elif isinstance(value, float):
        text = repr(value)  # every digit: the run reproduces the trial exactly
    else:
        text = str(value)
    return f"{key}={text}"


def space_path(name: str) -> Path:
    """conf/search/<name>.yaml (package data), or a path to a .yaml file."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise PhonemlpError(f"space={name}: file not found")
        return path
    folder = resources.files("phonemlp.conf") / "search"
    path = Path(str(folder / f"{name}.yaml"))
    if not path.is_file():
        shipped = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise PhonemlpError(
            f"space={name}: no conf/search/{name}.yaml; use one of {', '.join(shipped)} "
            "or a path to a .yaml file"
        )
    return path


def _number(where: str, value: Any, integer: bool) -> float | int:
    try:
        number = float(value)  # YAML reads 1e-4 (no dot) as a string: take it as written
    except (TypeError, ValueError):
        raise PhonemlpError(f"{where}={value!r} must be a number; {SYNTAX}") from None
    if not math.isfinite(number):
        raise PhonemlpError(f"{where}={value!r} must be finite")
    if integer:
        if number != int(number) or isinstance(value, bool):
            raise PhonemlpError(f"{where}={value!r} must be an integer (type: int)")
        return int(number)
    return number


def parse_param(source: str, key: str, entry: Any) -> Param:
    where = f"{source}: {key}"
    if not isinstance(entry, dict) or entry.get("type") not in TYPES:
        raise PhonemlpError(f"{where}: needs type: {' | '.join(TYPES)}; {SYNTAX}")
    kind = entry["type"]
    numeric = {"type", "low", "high", "step", "log"}
    allowed = {"type", "choices"} if kind == "categorical" else numeric
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise PhonemlpError(f"{where}: unknown field {unknown[0]} for type {kind}; {SYNTAX}")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise PhonemlpError(f"{where}: choices must be a non-empty list; {SYNTAX}")
        for choice in choices:
            if choice is not None and not isinstance(choice, str | int | float | bool):
                raise PhonemlpError(f"{where}: choice {choice!r} must be a number or a string")
        return Param(key, kind, choices=tuple(choices))
    for field in ("low", "high"):
        if field not in entry:
            raise PhonemlpError(f"{where}: needs {field}; {SYNTAX}")
    integer = kind == "int"
    low = _number(f"{where}.low", entry["low"], integer)
    high = _number(f"{where}.high", entry["high"], integer)
    step = None if entry.get("step") is None else _number(f"{where}.step", entry["step"], integer)
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise PhonemlpError(f"{where}.log={log!r} must be true or false")
    if low > high:
        raise PhonemlpError(f"{where}: low={low} is above high={high}")
    if log and low <= 0:
        raise PhonemlpError(f"{where}: log: true needs low > 0 (low={low})")
    if step is not None and (step <= 0 or (log and step != 1)):
        raise PhonemlpError(f"{where}.step={step} must be > 0 (and log: true takes no step)")
    return Param(key, kind, low, high, step, log)


def load_space(name: str) -> list[Param]:
    """The parameters of a space, in file order."""
    path = space_path(name)
    try:
        entries = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise PhonemlpError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(entries, dict) or not entries:
        raise PhonemlpError(f"{path}: a search space maps keys to distributions; {SYNTAX}")
    return [parse_param(str(path), str(key), entry) for key, entry in entries.items()]


def override_keys(overrides: list[str]) -> set[str]:
    """The keys the fixed overrides set (`model.depth=3` -> model.depth)."""
    return {text.split("=", 1)[0].lstrip("+~").split("@")[0] for text in overrides}


def free_params(space: list[Param], fixed: list[str]) -> list[Param]:
    """The space less the keys the command line fixes."""
    taken = override_keys(fixed)
    return [param for param in space if param.key not in taken]
