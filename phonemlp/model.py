"""The MLP, built from a list of hidden widths, and the shapes that make such lists."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from phonemlp.errors import PhonemlpError

SHAPES = ("cylinder", "pyramid", "inverse_pyramid", "diamond")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
NORMS = ("batch", "layer", "none")
INITS = (
    "default",
    "xavier_normal",
    "xavier_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "uniform",
)
_NARROWEST = 0.25  # pyramid-like shapes taper to this fraction of the width


def _round(width: float) -> int:
    """Round a width to a multiple of 8 (tensor-core friendly), at least 8."""
    return max(8, int(round(width / 8)) * 8)


def shape_widths(shape: str, depth: int, width: int) -> list[int]:
    """Hidden widths of a shape: `depth` layers whose widest is `width`."""
    if depth == 0:
        return []
    if depth == 1 or shape == "cylinder":
        return [_round(width)] * depth
    steps = [i / (depth - 1) for i in range(depth)]  # 0 .. 1 from first to last layer
    if shape == "pyramid":
        fractions = [1 - (1 - _NARROWEST) * t for t in steps]
    elif shape == "inverse_pyramid":
        fractions = [_NARROWEST + (1 - _NARROWEST) * t for t in steps]
    else:  # diamond: widest at the middle layer(s), narrowest at both ends
        centre = (depth - 1) / 2
        distance = [abs(i - centre) for i in range(depth)]
        near, far = min(distance), max(distance)
        fractions = [1 - (1 - _NARROWEST) * (d - near) / (far - near or 1) for d in distance]
    return [_round(width * f) for f in fractions]


def count_params(
    input_dim: int, widths: list[int], num_classes: int, norm: str = "batch", norm_every: int = 1
) -> int:
    """Trainable parameters of the MLP, without building it."""
    total, previous = 0, input_dim
    for i, width in enumerate(widths):
        total += previous * width + width
        if norm != "none" and i % norm_every == 0:
            total += 2 * width
        previous = width
    return total + previous * num_classes + num_classes


class Dropout(nn.Module):
    """Dropout drawing 16 random bits per element from 64-bit draws.

    Same expectation as nn.Dropout (p is resolved to 1/65536); on CPUs it is about twice as
    fast, because torch's CPU bernoulli draws one random number per element. The rate is a
    tensor changed in place (dropout schedules), so a compiled model or a captured CUDA graph
    reads the new rate without recompiling.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.register_buffer("rate", torch.tensor(float(p)), persistent=False)

    @property
    def p(self) -> float:
        return float(self.rate)

    @p.setter
    def p(self, value: float) -> None:
        self.rate.fill_(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        draws = torch.randint(
            -(2**63), 2**63 - 1, (-(-x.numel() // 4),), dtype=torch.int64, device=x.device
        )
        bits = draws.view(torch.int16)[: x.numel()].view(x.shape)
        # keep an element when its bits >= threshold; an int16 threshold keeps the comparison
        # in int16 (a float one would convert every draw to float first: 2.5x slower)
        threshold = ((self.rate * 65536).round() - 32768).to(torch.int16)
        keep = (bits >= threshold).to(x.dtype).div_((1 - self.rate).to(x.dtype))
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(nn.Sequential):
    """Linear layers of the given hidden widths, each followed by norm/activation/dropout."""

    def __init__(
        self, input_dim: int, widths: list[int], num_classes: int, layers_cfg: Any
    ) -> None:
        """`layers_cfg`: a `model` config's activation, norm, norm_position, norm_every,
        dropout, dropout_every and init (phonemlp.config.ModelConfig)."""
        c = layers_cfg
        activation, norm, norm_every, dropout = c.activation, c.norm, c.norm_every, c.dropout
        layers: list[nn.Module] = []
        previous = input_dim
        for i, width in enumerate(widths):
            layers.append(nn.Linear(previous, width))
            norm_layer = None
            if norm != "none" and i % norm_every == 0:
                norm_layer = nn.BatchNorm1d(width) if norm == "batch" else nn.LayerNorm(width)
            if norm_layer is not None and c.norm_position == "before":
                layers.append(norm_layer)
            layers.append(ACTIVATIONS[activation]())
            if norm_layer is not None and c.norm_position == "after":
                layers.append(norm_layer)
            if dropout > 0 and i % c.dropout_every == 0:
                layers.append(Dropout(dropout))
            previous = width
        layers.append(nn.Linear(previous, num_classes))
        super().__init__(*layers)
        self.widths = list(widths)
        if c.init != "default":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    _initialise(module, c.init, activation)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _initialise(linear: nn.Linear, init: str, activation: str) -> None:
    nonlinearity = "leaky_relu" if activation == "leaky_relu" else "relu"
    weight = linear.weight
    if init == "xavier_normal":
        nn.init.xavier_normal_(weight)
    elif init == "xavier_uniform":
        nn.init.xavier_uniform_(weight)
    elif init == "kaiming_normal":
        nn.init.kaiming_normal_(weight, nonlinearity=nonlinearity)
    elif init == "kaiming_uniform":
        nn.init.kaiming_uniform_(weight, nonlinearity=nonlinearity)
    elif init == "normal":
        nn.init.normal_(weight, std=0.02)
    elif init == "uniform":
        nn.init.uniform_(weight, -0.05, 0.05)
    nn.init.zeros_(linear.bias)


def build_model(model_cfg: Any, input_dim: int, num_classes: int) -> MLP:
    """The MLP a `model` config describes, refused before building if over max_params."""
    widths = resolve_widths(model_cfg, input_dim, num_classes)
    params = count_params(input_dim, widths, num_classes, model_cfg.norm, model_cfg.norm_every)
    if params > model_cfg.max_params:
        raise PhonemlpError(
            f"the model has {params:,} parameters, over model.max_params={model_cfg.max_params:,} "
            f"(widths {widths}, input {input_dim}); lower model.width, model.depth or context"
        )
    return MLP(input_dim, widths, num_classes, model_cfg)


def parse_count(value: int | float | str) -> int:
    """A parameter count: 19900000, 19.9M or 500K."""
    text = str(value).strip().upper().replace(",", "").replace("_", "")
    scale = {"K": 1e3, "M": 1e6}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale != 1 else text) * scale)
    except ValueError:
        raise PhonemlpError(
            f"model.param_budget={value!r} is not a count; write e.g. 19.9M, 500K or 3000000"
        ) from None


def fill_budget(model_cfg: Any, input_dim: int, num_classes: int, budget: int) -> list[int]:
    """The shape's widths with the largest `width` (a multiple of 8) that fits the budget."""
    depth = int(model_cfg.depth)

    def params(width: int) -> int:
        widths = shape_widths(model_cfg.shape, depth, width)
        return count_params(input_dim, widths, num_classes, model_cfg.norm, model_cfg.norm_every)

    if depth == 0 or params(8) > budget:
        raise PhonemlpError(
            f"model.param_budget={budget:,} cannot hold a {model_cfg.shape} of depth {depth} "
            f"on {input_dim} inputs (at least {params(8):,} parameters); raise it or lower context"
        )
    low, high = 8, 8
    while params(high) <= budget:
        low, high = high, high * 2
    while high - low > 8:  # params(low) fits, params(high) does not
        middle = (low + high) // 16 * 8
        low, high = (middle, high) if params(middle) <= budget else (low, middle)
    return shape_widths(model_cfg.shape, depth, low)


def resolve_widths(model_cfg: Any, input_dim: int = 0, num_classes: int = 0) -> list[int]:
    """The hidden widths of a model config: the explicit list, the budget-filling shape, or
    the shape at its `width`."""
    budget = model_cfg.get("param_budget")
    if model_cfg.widths is not None:
        widths = [int(w) for w in model_cfg.widths]
        return widths
    if budget is not None:
        return fill_budget(model_cfg, input_dim, num_classes, parse_count(budget))
    return shape_widths(model_cfg.shape, int(model_cfg.depth), int(model_cfg.width))


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision, None for fp32."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
