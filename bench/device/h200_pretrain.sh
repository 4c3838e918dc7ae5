#!/usr/bin/env bash
# One call on a lent NVIDIA H200 (the workplace's device tool), for issues 9 and 11:
#   1. unpack the Vulkan loader (.gl/*.deb), Deno and its module cache (.device/*.xz);
#   2. check that WebGPU sees the NVIDIA adapter, then run the op tests against their CPU
#      references in the background;
#   3. time the small training-step bench against PyTorch on CUDA in the same run;
#   4. time 30 steps of each pretraining stage, then pick the step counts that fill the budget
#      (40% VAE, 60% text encoder + U-Net) and run the mini SD pretraining with them;
#   5. bring back the model folder, logs and state as tars under $OUT, and every log.
# Carry .gl and .device (bench/device/_setup.sh says how to make them):
#   bash bench/device/h200_pretrain.sh <seconds for the whole script> [batch size] \
#     [VAE share of the time, default 0.4] [more mod.ts pretrain options, e.g. --vae-channels 32,64,64]
set -u
BUDGET=${1:-520}
BATCH=${2:-64}
VAE_SHARE=${3:-0.4}
shift $(($# < 3 ? $# : 3))
EXTRA=("$@")
START=$SECONDS
say() { echo "[$((SECONDS - START)) s] $*"; }
left() { echo $((BUDGET - (SECONDS - START))); }

# shellcheck source=bench/device/_setup.sh
source bench/device/_setup.sh
say "setup done"

DENOISE_PEER_PYTHON=python3 DENOISE_PEER_DEVICE=cuda timeout 100 \
  deno run --cached-only -A bench/train_step_bench.ts --cases small16,small1 --steps 5 \
  2>&1 | tee "$OUT/train_bench.log"
say "train bench done"

(timeout 240 deno test --cached-only -A tests/conv2d_test.ts tests/matmul_test.ts \
  tests/attention_test.ts tests/norm_test.ts tests/elementwise_test.ts tests/softmax_test.ts \
  tests/reduce_test.ts tests/geglu_test.ts tests/unet_test.ts tests/vae_clip_test.ts \
  >"$OUT/gpu_tests.log" 2>&1; echo "exit $?" >>"$OUT/gpu_tests.log") &

rm -rf /tmp/cal
timeout 150 deno run --cached-only -A mod.ts pretrain --vae-steps 30 --steps 30 \
  --batch-size "$BATCH" --log-every 10 --out /tmp/cal "${EXTRA[@]}" 2>&1 | tee "$OUT/calibrate.log"
rate() { # seconds per step between the logged steps 10 and 30 of a stage
  python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; \
a=[x for x in r if x['step']==10][0]; b=[x for x in r if x['step']==30][0]; \
print((b['elapsed']-a['elapsed'])/20)" "$1"
}
VAE_RATE=$(rate /tmp/cal/logs/vae/losses.jsonl) || exit 1
UNET_RATE=$(rate /tmp/cal/logs/unet/losses.jsonl) || exit 1
AVAIL=$(($(left) - 45))
read -r VAE_STEPS UNET_STEPS < <(python3 -c "import sys; a,v,u,s=map(float,sys.argv[1:]); \
print(int(s*a/v)//100*100, int((1-s)*a/u)//100*100)" "$AVAIL" "$VAE_RATE" "$UNET_RATE" "$VAE_SHARE")
say "s/step vae $VAE_RATE unet $UNET_RATE at batch $BATCH; $AVAIL s -> $VAE_STEPS + $UNET_STEPS steps"
[ "$VAE_STEPS" -ge 100 ] && [ "$UNET_STEPS" -ge 100 ] || { say "too slow to pretrain here"; exit 1; }

timeout $(($(left) - 15)) deno run --cached-only -A mod.ts pretrain --vae-steps "$VAE_STEPS" \
  --steps "$UNET_STEPS" --batch-size "$BATCH" --save-every-n-steps 1000 --log-every 50 \
  --out runs/mini_sd_h200 "${EXTRA[@]}" 2>&1 | tee "$OUT/pretrain.log"
say "pretrain exit ${PIPESTATUS[0]}"
wait
tar -C runs -chf "$OUT/mini_sd_h200.tar" mini_sd_h200/model mini_sd_h200/logs \
  mini_sd_h200/vae_stage.safetensors 2>&1
tar -C runs -chf - mini_sd_h200/state | split -b 15M - "$OUT/state.tar."
ls -la "$OUT"
tail -3 "$OUT/gpu_tests.log"
say "done"
