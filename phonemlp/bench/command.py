"""The phonemlp-bench command: conf/bench.yaml composed with `key=value` overrides, then the
configured sections measured (and the GPU self-check run), every figure written as JSON.

Nothing heavy (torch) is imported before the arguments are parsed, so `--help` and a misspelt
key answer at once."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from phonemlp.atomic import write_text
from phonemlp.errors import PhonemlpError, exit_on_user_error

PROGRAM = "phonemlp-bench"
SECTIONS = ("load", "pipeline", "train", "predict", "memory", "starter", "accuracy", "gpu")
# Dicts whose entries the user names: a value replaces the whole dict (Hydra would merge it).
NAMED = ("train.models", "starter.models", "accuracy.settings")


def bench_config(overrides: list[str]) -> DictConfig:
    """conf/bench.yaml with `key=value` overrides in Hydra's grammar (a list as [a,b], a dict
    as {k:v}, an element holding `=` quoted: memory.args=['epochs=1']); an unknown key or a
    value out of range is refused. A dict given to train.models, starter.models or
    accuracy.settings replaces it, e.g. train.models={tiny:[64]}."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from phonemlp.api import compose
    from phonemlp.bench.gpu import check_gpu_config

    for arg in overrides:
        if "=" not in arg or arg.startswith("-"):
            raise PhonemlpError(f"unexpected argument '{arg}'; the arguments are key=value "
                                f"(`{PROGRAM} --help` lists the keys)")  # fmt: skip
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    named = {o.key_or_group: o for o in parsed if replaces(o)}  # the last one of a key counts
    cfg = compose("bench", [o.input_line for o in parsed if not replaces(o)])
    for key, override in named.items():
        OmegaConf.update(cfg, key, override.value(), merge=False)
    check_bench_config(cfg)
    check_gpu_config(cfg.gpu)
    return cfg


def replaces(override: Any) -> bool:
    """Whether a parsed override sets a whole dict of NAMED (not added, not deleted)."""
    from hydra.core.override_parser.types import OverrideType

    return override.key_or_group in NAMED and override.type == OverrideType.CHANGE


def check_bench_config(cfg: DictConfig) -> None:
    """The measured sections' settings, refused with the key to fix."""
    for key in NAMED:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, DictConfig) or not all(
            OmegaConf.is_list(entry) for entry in value.values()
        ):
            raise PhonemlpError(f"{key}: a dict of name: [list], e.g. {key}={{name:[64]}}")
    unknown = set(cfg.sections) - set(SECTIONS)
    if unknown:
        raise PhonemlpError(f"sections: {sorted(unknown)} unknown; choose from {SECTIONS}")
    if cfg.data.dtype not in ("float32", "float16"):
        raise PhonemlpError(f"data.dtype={cfg.data.dtype!r} is not one of float32, float16")
    if not isinstance(cfg.repeats, int) or cfg.repeats < 1:
        raise PhonemlpError(f"repeats={cfg.repeats} must be >= 1")


def bench(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured sections; write and return every figure (and the gpu checks)."""
    from phonemlp.bench.gpu import gpu_check
    from phonemlp.bench.timing import machine

    sections = [s for s in cfg.sections if s != "gpu"]
    results: dict[str, Any] = {"machine": machine(), "config": OmegaConf.to_container(cfg)}
    if sections:
        measure_sections(cfg, sections, results)
    if "gpu" in cfg.sections:
        results["gpu"] = gpu_check(cfg)
        if not sections and "no_gpu" in results["gpu"]:
            return results  # no GPU: nothing measured, nothing written
    results["machine"]["load_average_end"] = list(os.getloadavg())
    out = Path(cfg.out).expanduser()
    write_text(out, json.dumps(results, indent=2) + "\n")  # a long bench never leaves half a file
    print(f"wrote {out}")
    return results


def measure_sections(cfg: DictConfig, sections: list[str], results: dict[str, Any]) -> None:
    import torch

    from phonemlp.bench.report import describe, print_rows, print_targets, targets
    from phonemlp.bench.sections import Bench
    from phonemlp.data.cache import default_cache_dir
    from phonemlp.runtime import configure, resolve_device

    configure(resolve_device(cfg.device), cfg.threads)
    root = corpus(cfg)
    owned = cfg.data.cache_dir is None
    cache_dir = (
        Path(tempfile.mkdtemp(prefix="bench-", dir=_ensure(default_cache_dir())))
        if owned
        else Path(cfg.data.cache_dir).expanduser()
    )
    work = Path(tempfile.mkdtemp(prefix="phonemlp-bench-"))
    try:
        runner = Bench(cfg, root, cache_dir, work)
        runner.results = results
        print(
            f"phonemlp-bench on {root}: {results['machine']['cpu']}, "
            f"{torch.get_num_threads()} threads, precision {runner.precision}",
            flush=True,
        )

        def report(section: str, result: dict[str, Any]) -> None:
            print(f"{section} ({result['section_s']:.0f} s)", flush=True)
            print_rows(describe(section, result))

        runner.run(sections, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if owned:
            shutil.rmtree(cache_dir, ignore_errors=True)
    results["targets"] = targets(results)
    print_targets(results["targets"])


def corpus(cfg: DictConfig) -> Path:
    """The corpus measured: data.root, or one of generate.frames written first."""
    from phonemlp.bench.corpus import write_large_corpus
    from phonemlp.data.cache import default_cache_dir
    from phonemlp.data.splits import corpus_root

    if cfg.generate.frames <= 0:
        return corpus_root(cfg.data.root)
    target = cfg.generate.root or default_cache_dir().parent / f"bench-corpus-{cfg.generate.frames}"
    started = time.perf_counter()
    root = write_large_corpus(
        Path(target), cfg.generate.frames, cfg.generate.utterances, cfg.generate.seed
    )
    print(f"corpus: {root} ({time.perf_counter() - started:.0f} s)", flush=True)
    return root


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main(argv: list[str] | None = None) -> None:
    """The phonemlp-bench console script: `phonemlp-bench [key=value ...]`; `--help` prints
    conf/bench.yaml, every key with its default and its comment."""
    from phonemlp.cli import command_help

    args = sys.argv[1:] if argv is None else argv
    with exit_on_user_error(PROGRAM):
        if any(arg in ("-h", "--help") for arg in args):
            print(command_help(PROGRAM, "bench"))
            return
        results = bench(bench_config(args))
    if results.get("gpu", {}).get("failed"):
        sys.exit(1)


if __name__ == "__main__":
    main()
