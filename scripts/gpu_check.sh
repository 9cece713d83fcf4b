#!/usr/bin/env bash
# The GPU self-check (phonemlp-bench sections=[gpu]) in one command, on a CUDA machine that has
# Python 3.12 with torch, numpy, pandas, matplotlib and tqdm but no network and none of
# phonemlp's other dependencies. Two steps:
#
#   scripts/gpu_check.sh download          # here, with network: fill .whl/ with the wheels
#                                          # phonemlp needs beyond those (cp312, manylinux)
#   scripts/gpu_check.sh [key=value ...]   # there: install .whl/ into /tmp/site, put this tree
#                                          # on PYTHONPATH with its console scripts, and run
#                                          # phonemlp-bench sections=[gpu] out=$OUT/gpu.json
#
# OUT (default ./gpu-check) receives gpu.json and gpu-check.log; key=value arguments go to
# phonemlp-bench (e.g. gpu.batches=200; see conf/bench.yaml). GPU_TESTS=1 also runs
# tests/test_gpu.py (pytest must be there). The exit status is 0 when every check passed or
# was skipped (and the tests passed). wandb and kaggle are neither shipped nor needed:
# every run has wandb.mode=disabled and nothing is submitted.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=.whl
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}

download() {
    rm -rf "$WHEELS"
    mkdir -p "$WHEELS"
    # hydra-core and omegaconf as pyproject.toml bounds them; PyYAML is compiled: cp312 only
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" \
        "hydra-core>=1.3.2,<1.4" "omegaconf>=2.3,<2.4" "PyYAML>=5.1"
    # omegaconf 2.3 needs antlr4 4.9.*, published as source only: built here (pure Python)
    "$PYTHON" -m pip wheel --no-deps -w "$WHEELS" "antlr4-python3-runtime==4.9.*"
    ls -l "$WHEELS"
}

check() {
    OUT=${OUT:-$PWD/gpu-check}
    mkdir -p "$OUT"
    if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
        echo "gpu_check.sh: no wheels in $WHEELS/; run 'scripts/gpu_check.sh download' first" >&2
        exit 2
    fi
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl
    # phonemlp from this tree, as it installs: the package with conf/ as phonemlp.conf, and
    # its console scripts (phonemlp-train and -predict run as subprocesses of the check)
    local src=/tmp/phonemlp-src
    rm -rf "$src"
    mkdir -p "$src/bin"
    cp -r phonemlp "$src/phonemlp"
    cp -r conf "$src/phonemlp/conf"
    "$PYTHON" - "$src/bin" <<'EOF'
import sys
import tomllib
from pathlib import Path

folder = Path(sys.argv[1])
with open("pyproject.toml", "rb") as file:
    scripts = tomllib.load(file)["project"]["scripts"]
for name, target in scripts.items():
    module, function = target.split(":")
    path = folder / name
    path.write_text(
        f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\n\n"
        f"if __name__ == '__main__':\n    sys.argv[0] = {name!r}\n    sys.exit({function}())\n"
    )
    path.chmod(0o755)
EOF
    export PYTHONPATH="$src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$src/bin:$PATH"
    export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
    {
        nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"
        "$PYTHON" -c 'import sys, torch; print(f"python {sys.version.split()[0]}, torch",
            torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available())'
    } 2>&1 | tee "$OUT/gpu-check.log"
    local status=0
    phonemlp-bench sections=[gpu] out="$OUT/gpu.json" "$@" 2>&1 | tee -a "$OUT/gpu-check.log" ||
        status=$?
    if [[ -n ${GPU_TESTS:-} ]]; then  # also the CUDA-only tests (tests/test_gpu.py)
        "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 |
            tee "$OUT/gpu-tests.log" || status=$?
    fi
    return "$status"
}

if [[ ${1:-} == download ]]; then
    download
else
    check "$@"
fi
