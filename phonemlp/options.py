"""`key=value` options for the small commands (phonemlp-data, phonemlp-submit).

Each value is read as the type of its default: true/false for a flag, a number for a
number, and otherwise the text as given (a path or a message is never reinterpreted, so
`message=run: c30, [ablation]` stays that text); `null` means none. An argument without
`=` is the one positional value a command may take (its ROOT).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from phonemlp.errors import PhonemlpError

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _flatten(defaults: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in defaults.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _parse(key: str, text: str, default: Any) -> Any:
    """`text` as the type of `default`."""
    if text == "null":
        return None
    try:
        if isinstance(default, bool):
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = "true or false" if isinstance(default, bool) else type(default).__name__
        raise PhonemlpError(f"{key}={text}: expected {kind}") from None
    return text


def _nest(flat: Mapping[str, Any]) -> SimpleNamespace:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value

    def build(node: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(
            **{k: build(v) if isinstance(v, dict) else v for k, v in node.items()}
        )

    return build(tree)


def parse_options(
    args: list[str],
    defaults: Mapping[str, Any],
    positional: str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> SimpleNamespace:
    """`defaults` updated by `key=value` arguments (nested keys dotted: data.root=...).

    A bare argument sets `positional`; an unknown key or a second bare argument is a
    PhonemlpError naming it.
    """
    types = _flatten(defaults)
    values = dict(types)
    aliases = aliases or {}
    bare_seen = False
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            if positional is None or bare_seen or arg.startswith("-"):
                raise PhonemlpError(
                    f"unexpected argument '{arg}'; options are key=value: {', '.join(values)}"
                )
            values[positional] = arg
            bare_seen = True
            continue
        key, text = arg.split("=", 1)
        key = aliases.get(key, key)
        if key not in values:
            raise PhonemlpError(f"unknown option '{key}'; the options are {', '.join(values)}")
        values[key] = _parse(key, text, types[key])
    return _nest(values)


def require(options: SimpleNamespace, key: str, usage: str) -> Any:
    """The value of a required (top-level) option, or a PhonemlpError showing the usage."""
    value = getattr(options, key, None)
    if value is None or str(value) == "":
        raise PhonemlpError(f"{key} is required: {usage}")
    return value
