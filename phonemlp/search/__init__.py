"""phonemlp-search: a resumable, parallel, pruning Optuna search on one shared study.

    phonemlp-search study=s1 data.root=/data/hw1p2 n_trials=40 workers=2 epochs=10
    phonemlp-search study=s1 report=true

settings.py  the search's own keys and --help    space.py   conf/search/<name>.yaml spaces
study.py     the shared study, who runs what     worker.py  a worker: trials, pruning, signals
launch.py    local processes or Slurm jobs       report.py  trials.csv, search.png, report.md
"""

from phonemlp.search.cli import main

__all__ = ["main"]
