"""phonemlp: config-driven MLP frame-level phoneme classifiers for CMU 11-785 HW1P2."""

__version__ = "0.1.0"
