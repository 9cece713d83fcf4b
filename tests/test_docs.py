"""The documentation: docs/configuration.md matches the schema, and every file a doc or an
error message names exists."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "scripts" / "gen_config_docs.py"

# A repository path as docs and messages write it: docs/x.md, conf/a/b.yaml, scripts/x.py|sh,
# phonemlp/x.py, tests/x.py.
# Not preceded by a path character (so `pkg://phonemlp.conf` or `../x/docs/y.md` do not count);
# placeholders (`conf/search/<name>.yaml`, `conf/search/NAME.yaml`) never match.
PATH = re.compile(
    r"(?<![\w./~$-])"
    r"(docs/[a-z0-9_./-]+\.md|conf/[a-z0-9_./-]+\.yaml|scripts/[a-z0-9_./-]+\.(?:py|sh)"
    r"|(?:phonemlp|tests)/[a-z0-9_/]+\.py)"
    r"(?![\w/-])"
)


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_config_docs", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_doc_is_up_to_date() -> None:
    generator = load_generator()
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == generator.render(), (
        "docs/configuration.md is out of date with phonemlp/config.py or conf/*.yaml: "
        "run `python scripts/gen_config_docs.py`"
    )


def test_configuration_doc_covers_every_schema_key() -> None:
    import dataclasses

    from phonemlp import config

    text = (REPO / "docs" / "configuration.md").read_text()

    def keys(cls: type, prefix: str = "") -> list[str]:
        found = []
        for field in dataclasses.fields(cls):
            nested = getattr(config, str(field.type), None)
            if isinstance(nested, type) and dataclasses.is_dataclass(nested):
                found += keys(nested, f"{prefix}{field.name}.")
            elif field.name != "optimizer":  # a group of torch.optim classes, listed by option
                found.append(prefix + field.name)
        return found

    missing = [
        key
        for cls in (config.TrainConfig, config.PredictConfig)
        for key in keys(cls)
        if f"| `{key}` |" not in text
    ]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_generator_reads_comments_ranges_and_choices() -> None:
    generator = load_generator()
    from phonemlp import config

    allowed = generator.allowed_values(config.TrainConfig)
    assert allowed["context"] == f"[0, {config.MAX_CONTEXT}]"
    assert allowed["epochs"] == "integer ≥ 1"
    assert allowed["precision"] == ", ".join(config.PRECISIONS)
    assert allowed["dropout_final"].startswith("null or ")
    assert generator.allowed_values(config.PredictConfig)["smooth_width"]
    assert generator.source_comments(config.ModelConfig)["depth"].startswith("hidden layers")
    notes = generator.yaml_comments(REPO / "conf" / "config.yaml")
    assert "augment.warp_prob" in notes
    assert "horizon" in notes["time_budget_s"]  # a comment continued on the next line


def string_literals(path: Path) -> list[str]:
    """Every string constant of a Python file (f-string parts one by one, docstrings too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def named_paths() -> dict[str, set[str]]:
    """Repository path -> the files that name it: README.md and docs/*.md, the string
    literals of phonemlp/**/*.py and scripts/*.py, and conf/**/*.yaml."""
    sources: dict[Path, list[str]] = {}
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        sources[doc] = [doc.read_text()]
    for module in [*sorted((REPO / "phonemlp").rglob("*.py")), *sorted(REPO.glob("scripts/*.py"))]:
        sources[module] = string_literals(module)
    for yaml_file in sorted((REPO / "conf").rglob("*.yaml")):
        sources[yaml_file] = [yaml_file.read_text()]
    found: dict[str, set[str]] = {}
    for source, texts in sources.items():
        for text in texts:
            for match in PATH.finditer(text):
                found.setdefault(match.group(1), set()).add(str(source.relative_to(REPO)))
    return found


def test_path_pattern() -> None:
    text = (
        "see docs/data.md; `conf/experiment/hw1p2.yaml`, scripts/gpu_check.sh, phonemlp/loop.py. "
        "not conf/search/<name>.yaml, conf/search/NAME.yaml, pkg://phonemlp.conf, "
        "../x/docs/y.md or docs/"
    )
    assert [m.group(1) for m in PATH.finditer(text)] == [
        "docs/data.md",
        "conf/experiment/hw1p2.yaml",
        "scripts/gpu_check.sh",
        "phonemlp/loop.py",
    ]


def test_every_named_file_exists() -> None:
    found = named_paths()
    assert "docs/data.md" in found and "docs/configuration.md" in found  # the scan works
    missing = {
        path: sorted(sources) for path, sources in found.items() if not (REPO / path).is_file()
    }
    assert not missing, f"named but not in the repository (path: named in): {missing}"


def test_relative_links_resolve() -> None:
    """Markdown links between README.md and docs/*.md point at files that exist."""
    broken = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert not broken, f"broken links: {broken}"
