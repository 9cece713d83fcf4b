"""phonemlp: config-driven MLP frame-level phoneme classifiers for CMU 11-785 HW1P2.

import phonemlp
summary = phonemlp.train(["context=30", "epochs=2"])          # a run, as phonemlp-train
phonemlp.predict(summary["best_checkpoint"], out="submission.csv")
"""

from phonemlp.api import predict, train

__version__ = "0.1.0"
__all__ = ["train", "predict"]
