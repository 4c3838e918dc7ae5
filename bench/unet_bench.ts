// The full SD 1.5-size U-Net (~860M parameters; random weights unless a diffusers U-Net
// safetensors file is given): one forward at batch 2 (classifier-free guidance) for 16x16
// latents (and 64x64 with --latent 64).
//
//   deno bench -A bench/unet_bench.ts                 (16x16, as a Deno.bench)
//   deno run -A bench/unet_bench.ts [--latent 16|64] [--weights unet.safetensors] [--runs 2]
//     [--dtype auto|f16|f32]
//     prints parameters, build/load time, per-forward time and peak GPU bytes; weights are f16
//     where the adapter has shader-f16 (as the loaders keep them) unless --dtype says otherwise
import { parseArgs } from "node:util";
import {
  deviceInfo,
  type DType,
  getDevice,
  memoryStats,
  noGrad,
  randn,
  resetPeakBytes,
  scope,
  sync,
  type Tensor,
} from "../mod.ts";
import { SafetensorsFile, SD15_UNET_CONFIG, UNet2DConditionModel } from "../mod.ts";

await getDevice();

async function build(weightDType: DType, weights?: string): Promise<UNet2DConditionModel> {
  const unet = new UNet2DConditionModel(SD15_UNET_CONFIG, { weightDType });
  if (weights) {
    using f = await SafetensorsFile.open(weights);
    await unet.loadSafetensors(f);
  }
  return unet;
}

function forward(unet: UNet2DConditionModel, x: Tensor, ctx: Tensor): Tensor {
  return scope(() => noGrad(() => unet.forward(x, 500, ctx)));
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      latent: { type: "string", default: "16" },
      weights: { type: "string" },
      runs: { type: "string", default: "2" },
      dtype: { type: "string", default: "auto" },
    },
  });
  const dtype = values.dtype === "auto"
    ? (deviceInfo().f16 ? "f16" : "f32")
    : values.dtype as DType;
  const side = Number(values.latent), runs = Number(values.runs);
  const t0 = performance.now();
  const unet = await build(dtype, values.weights);
  await sync();
  const params = unet.parameters().reduce((a, p) => a + p.value.size, 0);
  console.log(
    `U-Net: ${params} parameters, built in ${((performance.now() - t0) / 1000).toFixed(1)} s, ` +
      `${dtype} weights ${memoryStats().liveBytes} bytes`,
  );
  const x = randn([2, 4, side, side]), ctx = randn([2, 77, 768]);
  for (let i = 0; i < runs; i++) {
    resetPeakBytes();
    const t = performance.now();
    const y = forward(unet, x, ctx);
    await y.toArray();
    const ms = performance.now() - t;
    console.log(
      `forward batch 2 ${side}x${side}: ${(ms / 1000).toFixed(2)} s, peak GPU bytes ` +
        `${memoryStats().peakBytes} (live before ${memoryStats().liveBytes})` +
        (i === 0 ? " (first run includes pipeline compilation)" : ""),
    );
    y.dispose();
  }
  unet.dispose();
} else {
  const dtype = deviceInfo().f16 ? "f16" : "f32";
  const unet = await build(dtype);
  const x = randn([2, 4, 16, 16]), ctx = randn([2, 77, 768]);
  forward(unet, x, ctx).dispose(); // compile pipelines
  await sync();
  Deno.bench({
    group: "unet",
    name: `unet ${dtype} weights sd15 forward 2x4x16x16`,
    baseline: true,
    n: 2,
    warmup: 0,
    fn: async (b) => {
      b.start();
      const y = forward(unet, x, ctx);
      await sync();
      b.end();
      y.dispose();
    },
  });
}
