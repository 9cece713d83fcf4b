"""The YAML the package ships (installed as phonemlp.conf); importing it registers the typed
schemas (phonemlp/config.py) that conf/config.yaml and conf/predict.yaml build on."""

from phonemlp.config import register

register()
