#!/usr/bin/env bash
# The streaming comparison of results/streaming/README.md: data, the three trainings, the table.
# Small budget (2 CPU cores shared): 3,000/600 pairs, 32x32 frames, T = 16, 2 epochs, batch 32, D = 64, SPS stem
# (2x2 = 4 tokens per modality). Each training took ~10-15 min here with --threads 1 (three at once).
set -euo pipefail
DATA=${DATA:-/tmp/stream_exp/avd_t16.h5}
RUNS=${RUNS:-/tmp/stream_exp}
snnav data make av-digits --out "$DATA" --frame-size 32 --time-steps 16 --n-train 3000 --n-test 600 --workers 1
snnav train --config av-digits-scmrl-causal --data "$DATA" --out "$RUNS/causal" --threads 1         # streaming S-CMRL
snnav train --config results/streaming/scmrl.toml --data "$DATA" --out "$RUNS/scmrl" --threads 1    # faithful S-CMRL
snnav train --config results/streaming/av-add.toml --data "$DATA" --out "$RUNS/avadd" --threads 1   # AV add
python scripts/streaming_comparison.py --data "$DATA" --samples 600 \
    --run "S-CMRL faithful=$RUNS/scmrl" --run "S-CMRL causal=$RUNS/causal" --run "AV add=$RUNS/avadd" \
    --out results/streaming/README.md --csv results/streaming/accuracy_vs_steps.csv
