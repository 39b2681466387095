#!/usr/bin/env bash
# The streaming comparison of results/streaming/README.md: data, the three trainings, the table, the plot.
# Small budget (2 CPU cores shared): 3,000/600 pairs, 32x32 frames, T = 16, 4 epochs, batch 32, D = 64, SPS stem
# (2x2 = 4 tokens per modality). Run one training at a time, each with --threads 1: here they took 3.4 (causal),
# 5.9 (faithful) and 5.8 min (AV add) for 4 epochs, load average 2.4-7.5 on 2 cores shared with other jobs.
# SNNAV / PYTHON: how to call snnav and the Python with its dependencies (default: the installed `snnav`, `python`);
# from a checkout: SNNAV="python -m snnav.app.cli" with PYTHONPATH set to it.
set -euo pipefail
DATA=${DATA:-/tmp/stream_exp/avd_t16.h5}
RUNS=${RUNS:-/tmp/stream_exp}
SNNAV=${SNNAV:-snnav}
PYTHON=${PYTHON:-python}
$SNNAV data make av-digits --out "$DATA" --frame-size 32 --time-steps 16 --n-train 3000 --n-test 600 --workers 1
# streaming S-CMRL: the shipped config (2 epochs) run for 4 epochs like the two below
$SNNAV train --config av-digits-scmrl-causal --epochs 4 --data "$DATA" --out "$RUNS/causal" --threads 1
$SNNAV train --config results/streaming/scmrl.toml --data "$DATA" --out "$RUNS/scmrl" --threads 1    # faithful S-CMRL
$SNNAV train --config results/streaming/av-add.toml --data "$DATA" --out "$RUNS/avadd" --threads 1   # AV add
$PYTHON scripts/streaming_comparison.py --data "$DATA" --samples 600 \
    --run "S-CMRL faithful=$RUNS/scmrl" --run "S-CMRL causal=$RUNS/causal" --run "AV add=$RUNS/avadd" \
    --out results/streaming/README.md --csv results/streaming/accuracy_vs_steps.csv \
    --cost-csv results/streaming/decision_cost.csv --plot results/streaming/accuracy_vs_steps.svg
