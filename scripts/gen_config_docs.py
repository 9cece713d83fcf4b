"""Write docs/configuration.md from the typed config schema and the YAML that fills it.

    python scripts/gen_config_docs.py           # rewrite docs/configuration.md
    python scripts/gen_config_docs.py --check   # exit 1 if the committed file is out of date

Every key of phonemlp-train (`TrainConfig` and its groups) and phonemlp-predict
(`PredictConfig`) in phonemlp/config.py becomes a table row:

- type: the field's annotation;
- default: the value of the composed config (conf/config.yaml, conf/predict.yaml: the schema's
  default unless the YAML sets another);
- allowed: the range and choice checks of the dataclass's `__post_init__`, read from its source
  with `ast` (calls to choice / in_range / at_least, and `if ...: raise` with a "must be");
- meaning: the field's trailing comment in phonemlp/config.py, else the comment on the key's
  line in conf/*.yaml (with its continuation lines).

Config groups (model, optimizer, scheduler, experiment, hydra/launcher, the search spaces) list
their options, each with the first comment of its file and the keys it sets.
tests/test_docs.py fails when the committed file differs from this script's output.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import math
import re
import sys
import textwrap
import tokenize
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
OUT = ROOT / "docs" / "configuration.md"

if str(ROOT) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(ROOT))

from phonemlp import config as schema  # noqa: E402

PRAGMA = re.compile(r"^(fmt:|noqa|type:|ruff:|pragma)")


# --- comments: the dataclass source and the YAML -------------------------------------------


def source_comments(cls: type) -> dict[str, str]:
    """Each field's trailing comment on its line of the class source (pragmas left out)."""
    source = textwrap.dedent(inspect.getsource(cls))
    trailing: dict[int, str] = {}
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if token.start[0] in code_lines and text and not PRAGMA.match(text):
                trailing[token.start[0]] = text
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                tokenize.DEDENT, tokenize.ENCODING):  # fmt: skip
            code_lines.add(token.start[0])
    comments = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            last = node.end_lineno or node.lineno
            text = trailing.get(last) or trailing.get(node.lineno)
            if text:
                comments[node.target.id] = text
    return comments


def _split_comment(text: str) -> tuple[str, str]:
    """A YAML line's value and its trailing comment (a `#` after a space, outside quotes)."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def yaml_comments(path: Path) -> dict[str, str]:
    """The comment of every key of a YAML file by dotted path (`augment.warp_prob`); a
    comment-only line indented past the key continues the comment above it."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last: tuple[str, int] | None = None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            last = None
            continue
        if stripped.startswith("#"):
            if last is not None and indent > last[1]:
                comments[last[0]] += " " + stripped.lstrip("#").strip()
            else:
                last = None
            continue
        match = re.match(r"([A-Za-z_][\w.-]*)\s*:(.*)$", stripped)
        if match is None or stripped.startswith("- "):
            last = None
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = ".".join([k for _, k in stack] + [match.group(1)])
        value, comment = _split_comment(match.group(2))
        if comment:
            comments[key] = comment
            last = (key, indent)
        else:
            last = None
        if value in ("", "|", ">"):
            stack.append((indent, match.group(1)))
    return comments


def header_comment(path: Path) -> str:
    """The first paragraph of a YAML file's leading comment (no @package, no examples)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:]
        if text.strip().startswith("@package"):
            continue
        if not text.strip() or text.startswith("   "):  # a blank comment line or an example
            if lines:
                break
            continue
        lines.append(text.strip())
    return " ".join(lines)


# --- allowed values: the checks of __post_init__ ---------------------------------------------


def _constant(node: ast.AST) -> Any:
    if isinstance(node, ast.Name) and hasattr(schema, node.id):
        return getattr(schema, node.id)
    if isinstance(node, ast.Attribute) and node.attr == "inf":
        return math.inf
    return ast.literal_eval(node)


def _keys(node: ast.AST, env: dict[str, list[str]]) -> list[str]:
    """The key names a check's first argument stands for (loop variables expanded)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name):
        return list(env.get(node.id, []))
    if isinstance(node, ast.JoinedStr):
        keys = [""]
        for part in node.values:
            if isinstance(part, ast.Constant):
                keys = [k + str(part.value) for k in keys]
            elif isinstance(part, ast.FormattedValue):
                keys = [k + v for k in keys for v in _keys(part.value, env)]
        return keys
    return []


def _number(value: float) -> str:
    return "inf" if value == math.inf else f"{value:g}"


def _describe(call: ast.Call) -> str | None:
    name = call.func.id if isinstance(call.func, ast.Name) else ""
    args = call.args
    options = {k.arg: _constant(k.value) for k in call.keywords if k.arg}
    if name == "choice" and len(args) >= 3:
        return ", ".join(str(c) for c in _constant(args[2]))
    if name == "at_least" and len(args) >= 3:
        return f"integer ≥ {_constant(args[2])}"
    if name == "in_range" and len(args) >= 3:
        low = _constant(args[2])
        high = _constant(args[3]) if len(args) > 3 else options.get("high", math.inf)
        if high == math.inf:
            return f"> {_number(low)}" if options.get("low_open") else f"≥ {_number(low)}"
        left = "(" if options.get("low_open") else "["
        right = ")" if options.get("high_open") else "]"
        return f"{left}{_number(low)}, {_number(high)}{right}"
    return None


def _self_attribute(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == "self" else None
    return None


def _condition(test: ast.AST) -> str:
    """What a guarding `if` lets through unchecked: `if self.x != 0` -> '0 or '."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        right = test.comparators[0]
        if isinstance(test.ops[0], ast.IsNot) and isinstance(right, ast.Constant):
            return "null or " if right.value is None else ""
        if isinstance(test.ops[0], ast.NotEq) and isinstance(right, ast.Constant):
            return f"{right.value} or "
    return ""


def _raised_rule(stmt: ast.If) -> tuple[str, str] | None:
    """`if <test on self.x>: raise PhonemlpError("... must be Y ...")` -> (x, Y)."""
    test = stmt.test
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = test.operand  # `not low <= self.x <= high`
        if isinstance(inner, ast.Compare) and len(inner.ops) == 2:
            field_name = _self_attribute(inner.comparators[0])
            if field_name and all(isinstance(op, ast.LtE) for op in inner.ops):
                low, high = _constant(inner.left), _constant(inner.comparators[1])
                return field_name, f"[{_number(low)}, {_number(high)}]"
    raises = [s for s in stmt.body if isinstance(s, ast.Raise)]
    attributes = {a for n in ast.walk(test) if (a := _self_attribute(n))}
    if not raises or len(attributes) != 1 or not isinstance(raises[0].exc, ast.Call):
        return None
    parts = [
        str(n.value)
        for arg in raises[0].exc.args
        for n in ast.walk(arg)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    found = re.search(r"must (all )?be ([^;(]+)", "".join(parts))
    if found is None:
        return None
    return attributes.pop(), ((found.group(1) or "") + found.group(2)).strip()


def allowed_values(cls: type) -> dict[str, str]:
    """Field name (or dotted key) -> its allowed values, from the class's __post_init__."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    post_init = next(
        (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "__post_init__"),
        None,
    )
    found: dict[str, str] = {}

    def visit(statements: list[ast.stmt], env: dict[str, list[str]], prefix: str) -> None:
        for stmt in statements:
            if isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Name):
                try:
                    values = [str(v) for v in _constant(stmt.iter)]
                except (ValueError, TypeError):
                    continue
                visit(stmt.body, {**env, stmt.target.id: values}, prefix)
            elif isinstance(stmt, ast.If):
                rule = _raised_rule(stmt)
                if rule is not None:
                    found.setdefault(rule[0], rule[1])
                visit(stmt.body, env, prefix + _condition(stmt.test))
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                call = stmt.value
                if not call.args:
                    continue
                try:
                    text = _describe(call)
                except (ValueError, TypeError, SyntaxError):
                    text = None
                for key in _keys(call.args[0], env) if text else []:
                    found.setdefault(key.rsplit(".", 1)[-1], prefix + text)

    if post_init is not None:
        visit(post_init.body, {}, "")
    return found


# --- values and types -------------------------------------------------------------------


def composed(config_name: str, overrides: list[str]) -> Any:
    """The config phonemlp composes from this tree's conf/ (no overrides but the required)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    schema.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def show(value: Any) -> str:
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return str(value)


def type_name(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = str(text).replace("typing.", "")
    optional = False
    if match := re.fullmatch(r"Optional\[(.*)\]", text):
        text, optional = match.group(1), True
    text = re.sub(r"List\[(.*)\]", r"list of \1", text)
    text = {"Any": "any"}.get(text, text)
    return f"{text} or null" if optional else text


def nested_class(field: dataclasses.Field) -> type | None:
    name = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    cls = getattr(schema, str(name), None)
    return cls if isinstance(cls, type) and dataclasses.is_dataclass(cls) else None


def cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ").strip()


# --- the document -----------------------------------------------------------------------


def key_table(
    cls: type, cfg: Any, prefix: str, yaml_notes: list[dict[str, str]], groups: Any = ()
) -> list[str]:
    """One row per field of `cls`; nested dataclasses and config groups (`groups`) have
    sections of their own. The meaning is the longer of the field's comment in the source
    and the first YAML comment found for the key."""
    from omegaconf import OmegaConf

    notes = source_comments(cls)
    allowed = allowed_values(cls)
    rows = ["| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    for field in dataclasses.fields(cls):
        if nested_class(field) is not None or field.name in groups:
            continue
        key = prefix + field.name
        in_yaml = next((n[key] for n in yaml_notes if n.get(key)), "")
        meaning = max(notes.get(field.name, ""), in_yaml, key=len)
        if OmegaConf.is_missing(cfg, field.name):
            default = "required"
        else:
            default = f"`{show(cfg[field.name])}`"
        rows.append(
            f"| `{key}` | {type_name(field.type)} | {default} | "
            f"{cell(allowed.get(field.name, ''))} | {cell(meaning)} |"
        )
    return rows


def option_files(group: str) -> list[Path]:
    return sorted((CONF / group).glob("*.yaml"))


def flatten(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [
            item
            for key, value in node.items()
            if key != "defaults"
            for item in flatten(value, f"{prefix}{key}.")
        ]
    return [f"{prefix.rstrip('.')}={show(node)}"]


def flat(node: Any, prefix: str = "") -> dict[str, str]:
    """A composed (sub)config as dotted key -> shown value."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node)
    if isinstance(node, dict):
        return {
            k: v for key, value in node.items() for k, v in flat(value, f"{prefix}{key}.").items()
        }
    return {prefix.rstrip("."): show(node)}


def options_table(group: str, default: str | None, mode: str = "file") -> list[str]:
    """The options of a group. What each sets: `file`, the keys its file sets; `diff`, the keys
    whose composed value differs from the default option's; `all`, its whole composed node."""
    rows = ["| option | what | sets |", "| --- | --- | --- |"]
    baseline = flat(composed("config", [])[group]) if mode == "diff" else {}
    for path in option_files(group):
        option = path.stem
        content = yaml.safe_load(path.read_text()) or {}
        if mode == "file":
            parents = [d for d in content.get("defaults", []) if isinstance(d, str)]
            parents = [d for d in parents if d != "_self_"]
            sets = [f"(as `{parents[0]}`)"] if parents else []
            sets += [f"`{item}`" for item in flatten(content)]
        else:
            values = flat(composed("config", [f"{group}={option}"])[group])
            if mode == "diff":
                values = {k: v for k, v in values.items() if baseline.get(k) != v}
            sets = [f"`{k}={v}`" for k, v in values.items()]
            if not sets:
                sets = ["the defaults above"]
        name = f"`{option}`" + (" (default)" if option == default else "")
        what = cell(header_comment(path)).rstrip(":")
        rows.append(f"| {name} | {what} | {cell(' '.join(sets))} |")
    return rows


def group_defaults(config_file: Path) -> dict[str, str]:
    """The option each group takes by default, from the file's defaults list."""
    found = {}
    for entry in (yaml.safe_load(config_file.read_text()) or {}).get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                if not str(key).startswith("override") and value is not None:
                    found[str(key)] = str(value)
    return found


def command_section(title: str, cls: type | None, config_names: list[str]) -> list[str]:
    """A command's keys: its schema's table, filled by conf/<name>.yaml (the last composes the
    defaults shown); a nested `data` that is phonemlp-train's own is referred to, not copied."""
    files = [CONF / f"{name}.yaml" for name in config_names]
    if cls is None or not all(path.is_file() for path in files):
        return []
    cfg = composed(config_names[-1], [])
    notes = [yaml_comments(path) for path in files]
    lines = ["", f"## {title}", ""]
    for path in files:
        header = cell(header_comment(path))
        if header.startswith(title):  # a usage line
            header = f"`{header}`"
        lines.append(f"- conf/{path.name}: {header}")
    lines += ["", f"`{cls.__name__}`:", "", *key_table(cls, cfg, "", notes)]
    for field in dataclasses.fields(cls):
        nested = nested_class(field)
        if nested is None:
            continue
        lines += ["", f"### `{field.name}`", ""]
        same = schema.TrainConfig.__dataclass_fields__.get(field.name)
        if same is not None and nested is same.default_factory:
            lines.append(
                f"phonemlp-train's `{field.name}.*` keys, with the same defaults: "
                f"see `{field.name}` above."
            )
        else:
            lines += key_table(nested, cfg[field.name], f"{field.name}.", notes)
    return lines


def render() -> str:
    train_cfg = composed("config", [])
    config_notes = yaml_comments(CONF / "config.yaml")
    groups = group_defaults(CONF / "config.yaml")
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen_config_docs.py from phonemlp/config.py and conf/*.yaml;",
        "     do not edit by hand: run `python scripts/gen_config_docs.py`. -->",
        "",
        "Every key is set on the command line as `key=value` (`phonemlp-train context=30",
        'model.width=2048`) or in the Python API\'s overrides (`phonemlp.train(["context=30"])`).',
        "The schema is phonemlp/config.py: types are checked when the config is composed, an",
        "unknown key is refused, and a value outside *allowed* ends the command with one line",
        "naming the key. *default* is what phonemlp-train composes with no overrides",
        "(conf/config.yaml and the default option of each group). `phonemlp-train --cfg job`",
        "prints the whole composed config; `phonemlp-train --help` lists the groups.",
        "",
        "## phonemlp-train",
        "",
        f"`{schema.TrainConfig.__name__}`, filled by conf/config.yaml.",
        "",
        *key_table(schema.TrainConfig, train_cfg, "", [config_notes], groups),
    ]
    for field in dataclasses.fields(schema.TrainConfig):
        cls = nested_class(field)
        name = field.name
        if cls is None and type_name(field.type) != "any":
            continue
        lines += ["", f"### `{name}`", ""]
        group_file = CONF / name / f"{groups[name]}.yaml" if name in groups else None
        notes = [config_notes]
        if group_file is not None:  # the default option's comments, then the other options'
            files = sorted(option_files(name), key=lambda path: path != group_file)
            notes += [{f"{name}.{k}": v for k, v in yaml_comments(f).items()} for f in files]
        if group_file is not None:
            lines += [
                f"A config group: `{name}=OPTION` picks conf/{name}/OPTION.yaml "
                f"(default `{groups[name]}`); its keys are then `{name}.KEY=value`.",
                "",
            ]
        if cls is not None:
            doc = inspect.getdoc(cls) or ""
            if doc and not doc.startswith(cls.__name__ + "("):
                lines += [doc, ""]
            lines += key_table(cls, train_cfg[name], f"{name}.", notes)
            mode = "diff"
        else:
            comment = source_comments(schema.TrainConfig).get(name, "")
            lines += [
                "Not checked by the schema: the option's keys are the arguments of the class "
                "its `_target_` names, and torch checks them"
                + (f"; its form: `{comment}`." if comment else "."),
            ]
            mode = "all"
        if group_file is not None:
            lines += ["", "Options:", "", *options_table(name, groups[name], mode)]
    lines += [
        "",
        "### `experiment`",
        "",
        "Presets applied after conf/config.yaml (`# @package _global_`): `experiment=NAME` sets",
        "the keys below, and keys given on the command line still win. None by default.",
        "",
        *options_table("experiment", None),
        "",
        "### `hydra/launcher`",
        "",
        "Where the jobs of a multirun (`phonemlp-train -m`) run; the default is Hydra's `basic`",
        "(one after another in this process). The plugins' own options (`submitit_slurm`,",
        "`submitit_local`, `joblib`) come with the `sweep` extra; phonemlp ships:",
        "",
        *options_table("hydra/launcher", None),
        "",
    ]
    lines += command_section("phonemlp-predict", schema.PredictConfig, ["predict"])
    lines += command_section("phonemlp-submit", getattr(schema, "SubmitConfig", None), ["submit"])
    lines += command_section(
        "phonemlp-data",
        getattr(schema, "DataCommandConfig", None),
        ["data_check", "data_download", "data_prepare"],
    )
    lines += [
        "",
        "## phonemlp-search spaces",
        "",
        "`phonemlp-search space=NAME` reads conf/search/NAME.yaml (syntax at the top of",
        "conf/search/default.yaml); its own keys are listed by `phonemlp-search --help`.",
        "",
        "| space | what | keys searched |",
        "| --- | --- | --- |",
    ]
    for path in option_files("search"):
        keys = ", ".join(f"`{k}`" for k in (yaml.safe_load(path.read_text()) or {}))
        what = cell(header_comment(path)).rstrip(":")
        lines.append(f"| `{path.stem}` | {what} | {keys} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.is_file() else ""
        if current != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run `python scripts/gen_config_docs.py`")
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
