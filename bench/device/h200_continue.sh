#!/usr/bin/env bash
# Continues the shipped mini SD's pretraining on a lent NVIDIA machine (issue 11), in one call:
# the VAE decoder alone (the latents the U-Net learned stay as they are), then the text encoder
# and U-Net, each with `--init` from the folder before it; brings the new folder back as
# $OUT/mini_sd.tar with the logs. Replace models/mini_sd with it after checking its measures
# (`mod.ts eval`). Carry .gl and .device (bench/device/_setup.sh says how to make them):
#   bash bench/device/h200_continue.sh <decoder steps> <U-Net steps> <seed> [batch size]
# On an H200 at batch 64: ~0.07 s per decoder step, ~0.14 s per U-Net step (bench/RESULTS.md).
set -u
DEC=${1:?decoder steps}
UNET=${2:?U-Net steps}
SEED=${3:?seed (use one no earlier piece used: see denoise_history in the weights)}
BATCH=${4:-64}
START=$SECONDS
# shellcheck source=bench/device/_setup.sh
source bench/device/_setup.sh
deno run --cached-only -A mod.ts pretrain --stage decoder --init models/mini_sd \
  --vae-steps "$DEC" --batch-size "$BATCH" --seed "$SEED" --log-every 100 \
  --out runs/continue_dec 2>&1 | tee "$OUT/decoder.log" || exit 1
deno run --cached-only -A mod.ts pretrain --stage unet --init runs/continue_dec/model \
  --steps "$UNET" --batch-size "$BATCH" --seed "$SEED" --log-every 100 \
  --out runs/continue_unet 2>&1 | tee "$OUT/unet.log" || exit 1
mv runs/continue_unet/model runs/mini_sd
tar -C runs -cf "$OUT/mini_sd.tar" mini_sd continue_dec/logs continue_unet/logs
echo "done in $((SECONDS - START)) s"
