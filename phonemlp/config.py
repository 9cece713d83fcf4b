"""The typed config schema: one dataclass per YAML group, registered in Hydra's ConfigStore.

conf/config.yaml and conf/predict.yaml start from these schemas (`config_schema`,
`predict_schema`), so every key's type is checked when the config is composed, an unknown key
is refused, and `validate(cfg)` runs the range and choice checks kept next to each field
(`__post_init__`). Errors are one line naming the key: `context=51 must be an integer from
0 to 50`. The optimizer group stays open (`_target_` is any torch.optim class; torch checks
its arguments). docs/configuration.md is generated from this module.
"""

# OmegaConf reads these annotations at run time: Optional/List, not `X | None` / `list[X]`.
# ruff: noqa: UP006, UP007, UP035, UP045
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from phonemlp.errors import PhonemlpError

MAX_CONTEXT = 50
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SHAPES = ("cylinder", "pyramid", "inverse_pyramid", "diamond")
ACTIVATIONS = ("relu", "leaky_relu", "gelu", "silu", "mish", "softplus", "tanh", "sigmoid")
NORMS = ("batch", "layer", "none")
INITS = ("default", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
         "normal", "uniform")  # fmt: skip
NORMALIZE = ("utterance", "global", "none")
STORAGE = ("float32", "float16")
PLACEMENTS = ("auto", "device", "host")
SCHEDULERS = ("constant", "step", "plateau", "exponential", "cosine")
WANDB_MODES = ("offline", "online", "disabled")
SMOOTHING = ("none", "median", "hmm")
LABEL_FORMATS = ("symbol", "index")
SPLITS = ("test", "dev")


def choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise PhonemlpError(f"{key}={value!r} is not one of {', '.join(choices)}")


def in_range(key: str, value: float, low: float, high: float = math.inf, *,
             low_open: bool = False, high_open: bool = False) -> None:  # fmt: skip
    """low <= value <= high (strict at an open end), else one line naming the key."""
    too_low = value < low or (low_open and value == low)
    too_high = value > high or (high_open and value == high)
    if too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise PhonemlpError(f"{key}={value} must be in {left}{low:g}, {high:g}{right}")


def at_least(key: str, value: int, low: int) -> None:
    if value < low:
        kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise PhonemlpError(f"{key}={value} must be {kind}")


@dataclass
class DataConfig:
    root: Optional[str] = None  # the corpus; null = the embedded demo corpus
    train_split: str = "train-clean-100"
    dev_split: str = "dev-clean"
    test_split: str = "test-clean"
    fraction: float = 1.0  # train on a seeded random subset of the training utterances
    normalize: str = "utterance"  # utterance | global | none
    demo_seed: int = 0
    cache: bool = True  # prepare each split once and memory-map it after
    cache_dir: Optional[str] = None
    dtype: str = "float32"  # storage dtype of prepared features: float32 | float16
    placement: str = "auto"  # auto | device | host (pinned host memory, on a GPU)
    synthetic_frames: int = 0  # > 0: a generated split of this many frames (speed checks)

    def __post_init__(self) -> None:
        in_range("data.fraction", self.fraction, 0.0, 1.0, low_open=True)
        choice("data.normalize", self.normalize, NORMALIZE)
        choice("data.dtype", self.dtype, STORAGE)
        choice("data.placement", self.placement, PLACEMENTS)
        at_least("data.synthetic_frames", self.synthetic_frames, 0)


@dataclass
class ModelConfig:
    shape: str = "cylinder"  # how depth + width become widths
    depth: int = 3  # hidden layers; 0 = a linear classifier
    width: int = 1024  # the widest hidden layer
    widths: Optional[List[int]] = None  # explicit hidden widths; overrides shape/depth/width
    activation: str = "gelu"
    norm: str = "batch"
    norm_position: str = "before"  # before | after the activation
    norm_every: int = 1
    dropout: float = 0.1
    dropout_every: int = 1
    init: str = "default"
    max_params: int = 20_000_000  # the HW1P2 cap
    param_budget: Optional[str] = None  # e.g. 19.9M: the width that lands just under it

    def __post_init__(self) -> None:
        choice("model.shape", self.shape, SHAPES)
        choice("model.activation", self.activation, ACTIVATIONS)
        choice("model.norm", self.norm, NORMS)
        choice("model.norm_position", self.norm_position, ("before", "after"))
        choice("model.init", self.init, INITS)
        at_least("model.depth", self.depth, 0)
        at_least("model.width", self.width, 1)
        at_least("model.norm_every", self.norm_every, 1)
        at_least("model.dropout_every", self.dropout_every, 1)
        in_range("model.dropout", self.dropout, 0.0, 1.0, high_open=True)
        if self.widths is not None and any(w < 1 for w in self.widths):
            raise PhonemlpError(f"model.widths={list(self.widths)} must all be >= 1")
        if self.widths is not None and self.param_budget is not None:
            raise PhonemlpError("model.widths and model.param_budget exclude each other")


@dataclass
class SchedulerConfig:
    name: str = "cosine"
    warmup_epochs: float = 0.0  # linear warm-up over this many epochs (fractions allowed)
    min_lr_ratio: float = 0.01  # cosine/plateau: the lowest lr, as a fraction of optimizer.lr
    step_epochs: float = 2.0  # step: epochs between decays
    gamma: float = 0.5  # step/exponential: the decay factor
    factor: float = 0.5  # plateau: the lr factor after `patience` epochs without improvement
    patience: int = 1
    threshold: float = 0.001  # plateau: a smaller improvement does not count

    def __post_init__(self) -> None:
        choice("scheduler.name", self.name, SCHEDULERS)
        in_range("scheduler.warmup_epochs", self.warmup_epochs, 0.0)
        in_range("scheduler.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        in_range("scheduler.step_epochs", self.step_epochs, 0.0, low_open=True)
        in_range("scheduler.gamma", self.gamma, 0.0, 1.0, low_open=True)
        in_range("scheduler.factor", self.factor, 0.0, 1.0, low_open=True)
        at_least("scheduler.patience", self.patience, 0)
        in_range("scheduler.threshold", self.threshold, 0.0)


@dataclass
class AugmentConfig:
    time_mask_prob: float = 0.0  # chance of zeroing a run of frames (never the centre frame)
    time_mask_max: int = 0  # the longest run of frames zeroed
    freq_mask_prob: float = 0.0  # chance of zeroing a run of mel bands across the window
    freq_mask_max: int = 0  # the widest run of bands zeroed
    warp_prob: float = 0.0  # chance of stretching the band axis (vocal-tract-length style)
    warp_max: float = 0.0  # the largest relative stretch, e.g. 0.1 = factors in [0.9, 1.1]

    def __post_init__(self) -> None:
        for key in ("time_mask_prob", "freq_mask_prob", "warp_prob"):
            in_range(f"augment.{key}", getattr(self, key), 0.0, 1.0)
        at_least("augment.time_mask_max", self.time_mask_max, 0)
        at_least("augment.freq_mask_max", self.freq_mask_max, 0)
        in_range("augment.warp_max", self.warp_max, 0.0, 0.5, high_open=True)


@dataclass
class WandbConfig:
    mode: str = "offline"  # offline (files in the run folder, no login) | online | disabled
    project: str = "phonemlp"
    entity: Optional[str] = None
    group: Optional[str] = None  # null: in a sweep, the sweep folder
    tags: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        choice("wandb.mode", self.mode, WANDB_MODES)


@dataclass
class TrainConfig:
    """phonemlp-train's config (conf/config.yaml fills it; the groups below are its nodes)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: Any = MISSING  # {_target_: torch.optim.X, _partial_: true, lr: ..., ...}
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    context: int = 20
    epochs: int = 5
    batch_size: int = 1024
    seed: int = 11785
    device: str = "auto"
    precision: str = "auto"
    label_smoothing: float = 0.0
    grad_clip: float = 0.0
    checkpoint_every: int = 0
    checkpoint_every_batches: int = 0
    resume: Optional[str] = None
    limit_batches: int = 0
    time_budget_s: float = 0.0
    ema: float = 0.0
    rdrop_alpha: float = 0.0
    dropout_final: Optional[float] = None
    no_decay_norm_bias: bool = False
    eval_batch_size: int = 8192
    threads: int = 0
    compile: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.context <= MAX_CONTEXT:
            raise PhonemlpError(
                f"context={self.context} must be an integer from 0 to {MAX_CONTEXT}"
            )
        for key in ("epochs", "batch_size", "eval_batch_size"):
            at_least(key, getattr(self, key), 1)
        for key in ("checkpoint_every", "checkpoint_every_batches", "limit_batches", "threads"):
            at_least(key, getattr(self, key), 0)
        choice("device", self.device, DEVICES)
        choice("precision", self.precision, PRECISIONS)
        in_range("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        in_range("grad_clip", self.grad_clip, 0.0)
        in_range("time_budget_s", self.time_budget_s, 0.0)
        in_range("rdrop_alpha", self.rdrop_alpha, 0.0)
        if self.ema != 0:
            in_range("ema", self.ema, 0.0, 1.0, low_open=True, high_open=True)
        if self.dropout_final is not None:
            in_range("dropout_final", self.dropout_final, 0.0, 1.0, high_open=True)
            if self.model.dropout == 0:
                raise PhonemlpError(
                    "dropout_final needs model.dropout > 0 (the dropout layers it schedules)"
                )


@dataclass
class PredictDataConfig:
    root: Optional[str] = None  # null = the root stored in the (first) checkpoint
    test_split: str = "test-clean"
    dev_split: str = "dev-clean"


@dataclass
class PredictConfig:
    """phonemlp-predict's config (conf/predict.yaml)."""

    ckpt: Any = MISSING  # a .pt, a run folder (its best.pt), or a list of them (an ensemble)
    out: str = "submission.csv"
    split: str = "test"
    label_format: str = "symbol"
    data: PredictDataConfig = field(default_factory=PredictDataConfig)
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 8192
    max_params: int = 20_000_000
    threads: int = 0
    smooth: str = "none"
    smooth_width: int = 5
    hmm_weight: float = 1.0
    hmm_prior_weight: float = 1.0
    submit: bool = False
    message: Optional[str] = None
    competition: str = "11785-spring-25-hw-1-p-2"

    def __post_init__(self) -> None:
        choice("split", self.split, SPLITS)
        choice("label_format", self.label_format, LABEL_FORMATS)
        choice("device", self.device, DEVICES)
        choice("precision", self.precision, PRECISIONS)
        choice("smooth", self.smooth, SMOOTHING)
        if self.smooth_width < 1 or self.smooth_width % 2 == 0:
            raise PhonemlpError(
                f"smooth_width={self.smooth_width!r} must be a positive odd integer (e.g. 5)"
            )
        in_range("hmm_weight", self.hmm_weight, 0.0)
        in_range("hmm_prior_weight", self.hmm_prior_weight, 0.0)
        at_least("batch_size", self.batch_size, 1)
        at_least("threads", self.threads, 0)


@dataclass
class SubmitConfig:
    """phonemlp-submit (conf/submit.yaml)."""

    file: Optional[str] = None
    message: Optional[str] = None
    competition: str = "11785-spring-25-hw-1-p-2"
    dry_run: bool = False
    data: PredictDataConfig = field(default_factory=PredictDataConfig)
    demo_seed: int = 0


@dataclass
class DataCommandConfig:
    """phonemlp-data download/check/prepare (conf/data_<command>.yaml)."""

    root: Optional[str] = None
    competition: str = "11785-spring-25-hw-1-p-2"  # download
    rare: float = 0.001  # check: flag classes under this fraction of the frames
    progress: bool = True  # check
    data: DataConfig = field(default_factory=DataConfig)  # prepare


def register() -> None:
    """Put the schemas in Hydra's ConfigStore (conf/__init__.py calls this on import)."""
    store = ConfigStore.instance()
    store.store(name="config_schema", node=TrainConfig)
    store.store(name="predict_schema", node=PredictConfig)
    store.store(name="submit_schema", node=SubmitConfig)
    store.store(name="data_command_schema", node=DataCommandConfig)


def validate(cfg: DictConfig) -> DictConfig:
    """Run every field's range and choice checks (the schemas' __post_init__); returns cfg."""
    OmegaConf.to_object(cfg)
    return cfg
