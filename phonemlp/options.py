"""`key=value` options for the small commands (phonemlp-data, phonemlp-submit).

Values are parsed as OmegaConf parses a dotlist (as Hydra does: `true`, `10`, `null`, lists);
an argument without `=` is the one positional value a command may take (its ROOT).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from phonemlp.errors import PhonemlpError


def _keys(config: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key, value in config.items():
        if isinstance(value, DictConfig):
            keys += _keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def parse_options(
    args: list[str],
    defaults: Mapping[str, Any],
    positional: str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> DictConfig:
    """`defaults` updated by `key=value` arguments; a bare argument sets `positional`.

    An unknown key or a second bare argument is a PhonemlpError naming it.
    """
    config = OmegaConf.create(dict(defaults))
    known = _keys(config)
    aliases = aliases or {}
    bare_seen = False
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            if positional is None or bare_seen or arg.startswith("-"):
                raise PhonemlpError(
                    f"unexpected argument '{arg}'; options are key=value: {', '.join(known)}"
                )
            OmegaConf.update(config, positional, arg)
            bare_seen = True
            continue
        key, value = arg.split("=", 1)
        key = aliases.get(key, key)
        if key not in known:
            raise PhonemlpError(f"unknown option '{key}'; the options are {', '.join(known)}")
        try:
            parsed = OmegaConf.from_dotlist([f"{key}={value}"])
        except Exception as error:
            raise PhonemlpError(f"{arg}: cannot parse the value ({error})") from None
        OmegaConf.update(config, key, OmegaConf.select(parsed, key), merge=False)
    return config


def require(config: DictConfig, key: str, usage: str) -> Any:
    """The value of a required option, or a PhonemlpError showing the usage."""
    value = OmegaConf.select(config, key)
    if value is None or str(value) == "":
        raise PhonemlpError(f"{key} is required: {usage}")
    return value
