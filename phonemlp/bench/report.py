"""The bench's report: the issue's targets against the measured figures, and each section's
figures as table rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Rows = list[tuple[str, str]]


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with its measured value and whether it is met."""
    checks: dict[str, Any] = {}

    def check(name: str, value: float | None, target: float, higher: bool = True) -> None:
        if value is None:
            return
        checks[name] = {
            "value": value,
            "target": target,
            "met": bool(value >= target if higher else value <= target),
        }

    whole = results.get("starter", {}).get("whole_process", {})
    check("whole-process speed-up, linear ctx20", whole.get("linear", {}).get("speedup"), 10.0)
    check("whole-process speed-up, 3x1024 ctx20", whole.get("mlp_3x1024", {}).get("speedup"), 4.0)
    train = results.get("train", {})
    for name in ("medium", "large"):
        if name in train:
            check(f"training MFU, {name} ({train[name]['params'] / 1e6:.1f} M)",
                  train[name]["mfu"], 0.5)  # fmt: skip
    pipeline = results.get("pipeline", {})
    if "30" in pipeline:
        check("pipeline frames/s, ctx30", pipeline["30"]["frames_per_s"], 2e6)
    if "load" in results:
        check("cache load speed-up over .npy", results["load"]["speedup"], 20.0)
    memory = results.get("memory", {})
    for dtype, limit in (("float32", 1.5), ("float16", 0.9)):
        if dtype in memory:
            check(f"peak RSS / raw bytes, {dtype}", memory[dtype]["train_peak_over_raw"],
                  limit, higher=False)  # fmt: skip
    return checks


def si(value: float) -> str:
    """`value` with an SI prefix (k, M, G) and a trailing space, e.g. '1.50 M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.2f} "


def _load_rows(result: dict[str, Any]) -> Rows:
    return [
        ("load train from .npy", f"{result['npy_s']:.2f} s"),
        ("build the cache (first run)", f"{result['cache_build_s']:.2f} s"),
        ("load train from the cache", f"{result['cache_s'] * 1e3:.1f} ms"),
        ("  speed-up", f"{result['speedup']:.0f}x"),
        ("place on the device (ctx30)", f"{result['place_s']:.2f} s"),
    ]


def _pipeline_rows(result: dict[str, Any]) -> Rows:
    rows = []
    for key, value in result.items():
        if isinstance(value, dict) and "frames_per_s" in value:
            rows.append((f"pipeline ctx{key}", f"{si(value['frames_per_s'])}frames/s"))
            rows.append(("  + masking", f"{si(value['masked_frames_per_s'])}frames/s"))
    return rows


def _model_rows(section: str) -> Callable[[dict[str, Any]], Rows]:
    def rows(result: dict[str, Any]) -> Rows:
        return [
            (
                f"{section} {name} ({value['params'] / 1e6:.2f} M, ctx{result['context']})",
                f"{si(value['frames_per_s'])}frames/s, MFU {value['mfu']:.0%}",
            )
            for name, value in result.items()
            if isinstance(value, dict) and "params" in value
        ]

    return rows


def _memory_rows(result: dict[str, Any]) -> Rows:
    raw = result["raw_feature_bytes"]
    rows = [
        ("raw train features (float32)", f"{raw / 2**30:.2f} GiB"),
        ("runtime alone (phonemlp-train --help)", f"{result['runtime_rss'] / 2**30:.2f} GiB"),
    ]
    for dtype in ("float32", "float16"):
        if dtype in result:
            value = result[dtype]
            rows.append(
                (
                    f"peak RSS train, {dtype} storage",
                    f"{value['train_peak_rss'] / 2**30:.2f} GiB "
                    f"({value['train_peak_over_raw']:.2f}x raw)",
                )
            )
            rows.append(
                (f"peak RSS predict, {dtype}", f"{value['predict_peak_rss'] / 2**30:.2f} GiB")
            )
    return rows


def _starter_rows(result: dict[str, Any]) -> Rows:
    if "skipped" in result:
        return [("starter loop", f"skipped: {result['skipped']}")]
    rows = []
    for name, value in result["in_process"].items():
        rows.append(
            (
                f"train step {name} ctx{result['context']}: starter / phonemlp",
                f"{si(value['starter_frames_per_s'])}/ {si(value['phonemlp_frames_per_s'])}"
                f"frames/s = {value['speedup']:.1f}x",
            )
        )
    for name, value in result["whole_process"].items():
        rows.append(
            (
                f"epoch + dev, whole process, {name}",
                f"starter {value['starter_s']:.1f} s / phonemlp {value['phonemlp_s']:.1f} s"
                f" = {value['speedup']:.1f}x",
            )
        )
    return rows


def _accuracy_rows(result: dict[str, Any]) -> Rows:
    return [
        (f"dev acc {name}", f"{value['mean']:.4f} ± {value['std']:.4f}")
        for name, value in result.items()
        if isinstance(value, dict) and "mean" in value
    ]


SECTION_ROWS: dict[str, Callable[[dict[str, Any]], Rows]] = {
    "load": _load_rows,
    "pipeline": _pipeline_rows,
    "train": _model_rows("train"),
    "predict": _model_rows("predict"),
    "memory": _memory_rows,
    "starter": _starter_rows,
    "accuracy": _accuracy_rows,
}


def describe(section: str, result: dict[str, Any]) -> Rows:
    """Table rows (figure, value) for one section."""
    rows = SECTION_ROWS.get(section)
    return rows(result) if rows else []


def print_rows(rows: Rows) -> None:
    for figure, value in rows:
        print(f"  {figure:<48} {value}", flush=True)


def print_targets(checks: dict[str, Any]) -> None:
    """The targets' lines: value, target, met or not."""
    print("targets")
    for name, check in checks.items():
        value = check["value"]
        shown = f"{value:.3g}" if value < 1e5 else si(value)
        print(f"  {name:<48} {shown} (target {check['target']:g}): "
              f"{'met' if check['met'] else 'NOT met'}")  # fmt: skip
