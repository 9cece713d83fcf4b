"""The Python API, for notebooks and scripts; the console scripts are thin wrappers over it.

    import phonemlp
    summary = phonemlp.train(["data.root=/data/hw1p2", "context=30", "epochs=2"])
    phonemlp.predict(summary["best_checkpoint"], out="submission.csv")

Overrides are the command line's `key=value`. Each call composes its config afresh (no Hydra
global state is kept between calls), logs to the console and to the run's train.log, and
records the run's status; calls can repeat in one Python session.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("phonemlp")

CONFIG_MODULE = "phonemlp.conf"


def compose(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config `config_name` (config, predict, bench) with command-line style overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from phonemlp.config import validate

    if GlobalHydra.instance().is_initialized():  # inside phonemlp-train's own Hydra app
        return validate(hydra_compose(config_name, overrides=list(overrides)))
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return validate(hydra_compose(config_name, overrides=list(overrides)))


def train(
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train one model; returns the run's summary (best_dev_acc, best_checkpoint, params...).

    `run_dir` defaults to outputs/<date>/<time> under the current folder. `resume=<run or .pt>`
    continues a run (in `run_dir`: the same folder continues in place). `on_epoch(epoch, row)`
    runs after each epoch's checkpoints; raising phonemlp.errors.RunPruned stops the run.
    A problem the user can fix raises PhonemlpError with a one-line message."""
    from phonemlp.records import release_memory

    try:
        return run_training(list(overrides), run_dir, on_epoch)
    finally:
        release_memory()


def run_training(
    overrides: list[str],
    run_dir: str | Path | None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    wandb_group: str | None = None,
    composed: DictConfig | None = None,
) -> dict[str, Any]:
    """`train` with the sweep's wandb group and the config Hydra already composed from the
    same overrides (phonemlp-train passes both).

    The run's whole lifecycle is here: its log, its status record (running, then finished,
    pruned, failed or interrupted), its wandb run (opened now, closed however the run ends)."""
    from phonemlp.plots import start_drawing
    from phonemlp.records import recorded
    from phonemlp.tracking import Tracker

    run_dir = Path(run_dir) if run_dir is not None else default_run_dir()
    with run_logging(run_dir), recorded(run_dir), out_of_memory_hint(overrides):
        cfg, requested, checkpoint = run_config(overrides, run_dir, composed)
        if wandb_group and not cfg.wandb.group:
            cfg.wandb.group = wandb_group
        record_config(run_dir, cfg, overrides)
        with Tracker(cfg, run_dir) as tracker:
            start_drawing()  # the report plots' process: it imports matplotlib meanwhile
            from phonemlp.training import train as train_model  # torch: while wandb starts

            return train_model(cfg, run_dir, requested, checkpoint, tracker, on_epoch)


def run_config(
    overrides: list[str], run_dir: Path, composed: DictConfig | None = None
) -> tuple[DictConfig, list[str], dict[str, Any] | None]:
    """The run's config, its effective overrides, and the checkpoint it resumes (if any): with
    `resume=`, the checkpoint's own overrides come first, then this call's."""
    from phonemlp.config import validate

    requested = [o for o in overrides if not o.startswith("resume=")]
    cfg = validate(composed.copy()) if composed is not None else compose("config", overrides)
    source, checkpoint = None, None
    if cfg.resume:  # (the checkpoint code needs torch: imported only to resume)
        from phonemlp.checkpoint import find_resume, load_checkpoint

        source = find_resume(cfg.resume, run_dir, requested)
    if source is not None:
        checkpoint = load_checkpoint(source)
        requested = [*checkpoint["overrides"], *requested]
        cfg = compose("config", [*requested, f"resume={source}"])
    cfg.resume = None if source is None else str(source)
    if cfg.data.synthetic_frames:
        cfg.data.normalize = "none"  # generated frames are standardised already
    return cfg, requested, checkpoint


def predict(
    ckpt: str | Path | Sequence[str | Path], out: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:  # fmt: skip
    """Predict with one checkpoint (a .pt or a run folder) or an ensemble (a list).

    With split=test (default) writes `out` (default submission.csv) and returns its path and
    rows; with split=dev (e.g. overrides=["split=dev"]) returns the dev accuracy."""
    from phonemlp.prediction import predict as predict_split

    sources = [ckpt] if isinstance(ckpt, str | Path) else list(ckpt)
    quoted = ",".join(_quote(source) for source in sources)
    arguments = [f"ckpt=[{quoted}]", *([f"out={_quote(out)}"] if out is not None else [])]
    with run_logging(None), out_of_memory_hint(overrides, key="batch_size"):
        return predict_split(compose("predict", [*arguments, *overrides]))


def _quote(value: str | Path) -> str:
    """A path as a quoted Hydra override value (commas, brackets and `=` stay literal)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def default_run_dir() -> Path:
    now = datetime.datetime.now()
    return Path("outputs") / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S")


def record_config(run_dir: Path, cfg: DictConfig, overrides: list[str]) -> None:
    """`.hydra/config.yaml` and `overrides.yaml`, as Hydra's own runs have them (phonemlp-ablate
    and resume=auto read them); kept when Hydra already wrote them."""
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "config.yaml").exists():
        OmegaConf.save(cfg, folder / "config.yaml")
    if not (folder / "overrides.yaml").exists():
        OmegaConf.save(OmegaConf.create(list(overrides)), folder / "overrides.yaml")


@contextlib.contextmanager
def run_logging(run_dir: Path | None) -> Iterator[None]:
    """phonemlp's log lines on stdout (the message alone) and in run_dir/train.log
    (timestamped), for the duration of one call; not passed on to the root logger, so that a
    notebook's or Hydra's own logging setup does not print them twice."""
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    handlers: list[logging.Handler] = [console]
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(run_dir / "train.log")
        file.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
        handlers.append(file)
    before = log.level, log.propagate
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in handlers:
        log.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
        log.level, log.propagate = before


@contextlib.contextmanager
def out_of_memory_hint(overrides: Sequence[str], key: str = "batch_size") -> Iterator[None]:
    """Running out of GPU memory becomes a one-line error naming the batch size."""
    try:
        yield
    except Exception as error:
        if type(error).__name__ != "OutOfMemoryError":
            raise
        from phonemlp.errors import PhonemlpError

        given = [o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}=")]
        setting = f" with {key}={given[-1]}" if given else ""
        raise PhonemlpError(
            f"out of GPU memory{setting}; try a smaller {key} (e.g. half), a smaller model, "
            "or device=cpu"
        ) from None
