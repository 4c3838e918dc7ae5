#!/usr/bin/env bash
# One call on a lent NVIDIA H200 for issue 9's GPU part: every training-step bench case against
# PyTorch on CUDA in the same run, then the per-kernel profile (timestamp-query) of one step of
# the small U-Net and of the SD-1.5-size frozen step; logs under $OUT. About 4 minutes; run it
# before h200_pretrain.sh in the same session. Carry .gl and .device (bench/device/_setup.sh):
#   bash bench/device/h200_speed.sh
set -u
START=$SECONDS
say() { echo "[$((SECONDS - START)) s] $*"; }
# shellcheck source=bench/device/_setup.sh
source bench/device/_setup.sh
say "setup done"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())" 2>&1 |
  tee "$OUT/torch.log"
DENOISE_PEER_PYTHON=python3 DENOISE_PEER_DEVICE=cuda timeout 200 \
  deno run --cached-only -A bench/train_step_bench.ts --cases small16,small1,sd1,sdfwd2 \
  --steps 5 --warmup 1 2>&1 | tee "$OUT/train_bench.log"
say "benches done"
timeout 120 deno run --cached-only -A bench/train_step_bench.ts --cases small16,sd1 --no-peer \
  --steps 1 --warmup 1 --profile 2>&1 | tee "$OUT/profile.log"
say "profiles done"
