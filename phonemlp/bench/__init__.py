"""phonemlp-bench: how fast phonemlp is on this machine, and against the starter notebook.

phonemlp-bench                                        # the embedded demo corpus
phonemlp-bench data.root=/data/11785-s25-hw1p2 out=bench.json
phonemlp-bench generate.frames=36091157 generate.root=/tmp/hw1p2-36M sections=[load,memory]

Sections (conf/bench.yaml `sections`), each a set of figures in the JSON file and the table:
- load: a split read from its .npy files, against building and then opening its cache;
- pipeline: batches of windows + labels only (no model), frames/s per context;
- train: training frames/s and model-FLOP utilisation (6 x params x frames/s over this
  run's own matmul FLOP/s in the same dtype) for about 0.5 M, 3 M and 20 M parameters;
- predict: inference frames/s (and utilisation at 2 x params);
- memory: peak resident memory of whole phonemlp-train / phonemlp-predict runs against
  the raw float32 bytes of the training features, per storage dtype;
- starter: the same model trained through the starter-notebook loop (scripts/
  starter_baseline.py of a source checkout: per-frame Dataset + DataLoader), in-process and
  as whole processes (one epoch + dev evaluation); skipped where that script is absent;
- accuracy (not by default): dev accuracy per precision and storage dtype, over seeds;
- gpu (not by default): the GPU self-check.

Every figure is measured `repeats` times and the median reported; the machine's load
average is recorded, since a busy machine slows everything.

Modules: command (the console script, bench_config, bench), sections (class Bench),
timing (medians, FLOP/s, measured subprocesses), corpus (write_large_corpus), report
(targets and tables), gpu (the GPU self-check), starter (the reference loop's script).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "bench": "command",
    "bench_config": "command",
    "main": "command",
    "run_measured": "timing",
    "write_large_corpus": "corpus",
    "gpu_check": "gpu",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The names above, imported on first use (so that `phonemlp-bench --help` needs no torch)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
