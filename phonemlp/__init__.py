"""phonemlp: config-driven MLP frame-level phoneme classifiers for CMU 11-785 HW1P2.

import phonemlp
summary = phonemlp.train(["context=30", "epochs=2"])          # a run, as phonemlp-train
phonemlp.predict(summary["best_checkpoint"], out="submission.csv")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phonemlp.api import predict, train

__version__ = "0.1.0"
__all__ = ["train", "predict"]


def __getattr__(name: str) -> Any:
    """`phonemlp.train` and `phonemlp.predict`, imported when first used: the package's
    helper processes and small commands do not pay for the API's imports."""
    if name in __all__:
        from phonemlp import api

        return getattr(api, name)
    raise AttributeError(f"module 'phonemlp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])  # train and predict show in a notebook's completion
