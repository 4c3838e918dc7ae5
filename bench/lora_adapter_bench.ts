// Unmerged LoRA cost on the U-Net forward (kohya's default modules, rank 8) against the plain
// U-Net, and the time to merge an SD 1.5-size LoRA with conv ranks into SD 1.5-size weights.
//
//   deno bench -A bench/lora_adapter_bench.ts        (tiny U-Net, batch 2, 16x16 latents)
//   deno run -A bench/lora_adapter_bench.ts [--sd] [--skip-tiny] [--runs 3]
//     prints the median forward time with and without adapters for the tiny U-Net and, with
//     --sd, the merge time of an SD 1.5-size LoRA (rank 8, conv rank 4: 278 U-Net + 72
//     text-encoder modules) into SD 1.5-size weights, then the forward comparison for the SD
//     1.5-size U-Net at 16x16 latents (batch 2)
import { parseArgs } from "node:util";
import {
  CLIPTextModel,
  deviceInfo,
  type DType,
  Generator,
  getDevice,
  noGrad,
  randn,
  scope,
  SD15_CLIP_CONFIG,
  SD15_UNET_CONFIG,
  sync,
  type Tensor,
  UNet2DConditionModel,
  type UNetConfig,
} from "../mod.ts";
import { applyLoras, type LoraEntry, LoraNetwork, makePlan, mergeLoras } from "../src/lora/mod.ts";
import { benchOp } from "./_bench.ts";

await getDevice();

const TINY: Partial<UNetConfig> = {
  blockOutChannels: [32, 64],
  layersPerBlock: 1,
  attentionHeads: 2,
  crossAttentionDim: 32,
  normNumGroups: 8,
};

function forward(unet: UNet2DConditionModel, x: Tensor, ctx: Tensor): Tensor {
  return scope(() => noGrad(() => unet.forward(x, 500, ctx)));
}

/** Attaches rank-8 LoRAs with random (non-zero) ups to kohya's default U-Net modules. */
async function attach(unet: UNet2DConditionModel): Promise<LoraNetwork> {
  const net = LoraNetwork.fromPlan({ unet }, makePlan(unet.config, null, { rank: 8, alpha: 4 }));
  net.eval();
  for (const { adapter } of net.adapters) {
    const p = adapter.param("lora_up");
    p.assign(randn(p.shape, { std: 0.01 }));
  }
  await sync();
  return net;
}

function median(ms: number[]): number {
  const s = [...ms].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * Times the forward without adapters, with the low-rank adapters, and with weight copies
 * (`applyLoras` mode "copy"), rotating runs so load drift hits all three.
 */
async function compare(
  label: string,
  unet: UNet2DConditionModel,
  x: Tensor,
  ctx: Tensor,
  runs: number,
): Promise<void> {
  const run = async () => {
    const t = performance.now();
    const y = forward(unet, x, ctx);
    await sync();
    y.dispose();
    return performance.now() - t;
  };
  const net = await attach(unet);
  const entries = await net.entries();
  net.detach();
  const copies = await applyLoras({ unet }, [{ entries }], { mode: "copy" });
  copies.detach();
  const modes: [string, () => void, () => void, number[]][] = [
    ["base", () => {}, () => {}, []],
    ["low-rank", () => net.attach(), () => net.detach(), []],
    ["weight copies", () => copies.attach(), () => copies.detach(), []],
  ];
  for (let i = -1; i < runs; i++) { // i = -1: pipelines compile
    for (const [, on, off, ms] of modes) {
      on();
      const t = await run();
      off();
      if (i >= 0) ms.push(t);
    }
  }
  const b = median(modes[0]![3]);
  console.log(`${label}, ${net.adapters.length} rank-8 LoRAs, medians of ${runs} rotating runs:`);
  for (const [name, , , ms] of modes) {
    const m = median(ms);
    console.log(
      `  ${name}: ${m.toFixed(1)} ms (${((m / b - 1) * 100).toFixed(1)}% over base; runs ${
        ms.map((v) => v.toFixed(0)).join("/")
      })`,
    );
  }
  net.dispose();
  copies.dispose();
}

function randomEntries(unet: UNetConfig): LoraEntry[] {
  const plan = makePlan(unet, SD15_CLIP_CONFIG, { rank: 8, alpha: 4, convRank: 4, convAlpha: 1 });
  let seed = 1;
  const fill = (n: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      a[i] = (seed / 2 ** 32 - 0.5) * 0.02;
    }
    return a;
  };
  return plan.entries.map((e) => {
    const [out, inp, k] = [e.shape[0]!, e.shape[1]!, e.shape[2]];
    const down = k === undefined ? [e.rank, inp] : [e.rank, inp, k, k];
    const up = k === undefined ? [out, e.rank] : [out, e.rank, 1, 1];
    return {
      component: e.component,
      path: e.path,
      kind: "lora" as const,
      alpha: e.alpha,
      tensors: {},
      down: { shape: down, data: fill(down.reduce((a, b) => a * b, 1)) },
      up: { shape: up, data: fill(up.reduce((a, b) => a * b, 1)) },
    };
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sd: { type: "boolean" },
      "skip-tiny": { type: "boolean" },
      runs: { type: "string", default: "3" },
    },
  });
  const runs = Number(values.runs);
  const dtype: DType = deviceInfo().f16 ? "f16" : "f32";
  if (!values["skip-tiny"]) {
    using unet = new UNet2DConditionModel(TINY, { generator: new Generator(1) });
    const x = randn([2, 4, 16, 16]), ctx = randn([2, 77, 32]);
    await compare("tiny U-Net f32, batch 2, 16x16 latents", unet, x, ctx, runs);
  }
  if (values.sd) {
    const t0 = performance.now();
    using unet = new UNet2DConditionModel(SD15_UNET_CONFIG, { weightDType: dtype });
    using te = new CLIPTextModel(SD15_CLIP_CONFIG, { weightDType: dtype });
    await sync();
    console.log(
      `SD 1.5-size U-Net and text encoder built in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s (${dtype} weights)`,
    );
    const entries = randomEntries(unet.config);
    const t1 = performance.now();
    const deltas = await mergeLoras({ unet, textEncoder: te }, [{ entries, multiplier: 1 }]);
    console.log(
      `merge of an SD 1.5-size LoRA (${entries.length} modules, rank 8, conv rank 4) into ` +
        `${dtype} weights: ${
          ((performance.now() - t1) / 1000).toFixed(1)
        } s (${deltas.length} deltas)`,
    );
    const x = randn([2, 4, 16, 16]), ctx = randn([2, 77, 768]);
    await compare(`SD 1.5-size U-Net ${dtype} weights, batch 2, 16x16 latents`, unet, x, ctx, runs);
  }
} else {
  let unet: UNet2DConditionModel | null = null;
  let x: Tensor | null = null, ctx: Tensor | null = null;
  const setup = (lora: boolean) => async () => {
    unet ??= new UNet2DConditionModel(TINY, { generator: new Generator(1) });
    x ??= randn([2, 4, 16, 16]);
    ctx ??= randn([2, 77, 32]);
    if (lora) await attach(unet);
    return () => forward(unet!, x!, ctx!);
  };
  benchOp({
    group: "lora unet",
    name: "unet tiny f32 2x4x16x16 forward",
    work: {},
    baseline: true,
    n: 10,
    setup: setup(false),
  });
  benchOp({
    group: "lora unet",
    name: "unet tiny f32 2x4x16x16 forward + rank-8 LoRAs on default modules",
    work: {},
    n: 10,
    setup: setup(true),
  });
}
