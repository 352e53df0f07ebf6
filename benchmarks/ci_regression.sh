#!/usr/bin/env bash
# CI regression gate: a small deterministic benchmark (the packaged MiniLM, vanilla and RAM, seed 0,
# 128 examples per set, two epochs, CPU, fp32: the same numbers on any CPU, with or without native
# bf16) checked against the committed baseline baselines/ci-minilm.json.
#
#   benchmarks/ci_regression.sh            # run the benchmark, then 'robench check' (exit 1 on a regression)
#   benchmarks/ci_regression.sh record     # run it twice, require identical scores, (re)write the baseline
#
# Environment: ROBENCH (the CLI, default: robench on PATH or .venv/bin/robench), MODEL (minilm),
# METHODS (vanilla,ram), SEEDS (0), SUITE (id,shift,calibration,anomaly), LIMIT (128), EPOCHS (2),
# TOLERANCE (record mode only: the tolerance written into the baseline; 0.02, absolute: about two flipped
# predictions in 128; check mode uses the tolerances the baseline holds), BASELINE, WORK (scratch dir).
# Widen METHODS / SUITE as methods and evaluators land, then re-record the baseline in the same change.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${ROBENCH:-}" ]; then
    if [ -x .venv/bin/robench ]; then ROBENCH=.venv/bin/robench; else ROBENCH=robench; fi
fi
MODEL=${MODEL:-minilm}
METHODS=${METHODS:-vanilla,ram}
SEEDS=${SEEDS:-0}
SUITE=${SUITE:-id,shift,calibration,anomaly}
LIMIT=${LIMIT:-128}
EPOCHS=${EPOCHS:-2}
TOLERANCE=${TOLERANCE:-0.02}
BASELINE=${BASELINE:-baselines/ci-minilm.json}
WORK=${WORK:-$(mktemp -d -t robench-ci.XXXXXX)}
export ROBENCH_PROGRESS=0 TOKENIZERS_PARALLELISM=false

bench() {  # $1: output folder
    "$ROBENCH" run --task sentiment --model "$MODEL" --methods "$METHODS" --seeds "$SEEDS" --suite "$SUITE" \
        --profile default --limit "$LIMIT" --epochs "$EPOCHS" --device cpu --precision fp32 \
        --runs-dir "$1/runs" --results-dir "$1/results" --no-plots
}

if [ "${1:-check}" = "record" ]; then
    rm -rf "$WORK/a" "$WORK/b"
    bench "$WORK/a"
    bench "$WORK/b"
    # Determinism: both runs must record exactly the same scores before they become the baseline.
    "$ROBENCH" baseline record --results "$WORK/a/runs" --out "$WORK/a.json" --tolerance "$TOLERANCE"
    "$ROBENCH" baseline record --results "$WORK/b/runs" --out "$WORK/b.json" --tolerance "$TOLERANCE"
    python3 - "$WORK/a.json" "$WORK/b.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["scores"] for p in sys.argv[1:3])
if a != b:
    sys.exit("not deterministic: two identical benchmark runs gave different scores; baseline not recorded")
print(f"deterministic: {sum(len(m) for m in a.values())} metrics identical across two runs")
PY
    mkdir -p "$(dirname "$BASELINE")"
    "$ROBENCH" baseline record --results "$WORK/a/runs" --out "$BASELINE" --tolerance "$TOLERANCE"
else
    rm -rf "$WORK/check"
    bench "$WORK/check"
    "$ROBENCH" check --results "$WORK/check/runs" --baseline "$BASELINE"
fi
