// Training-step benches, ours and PyTorch's side by side in one run (issue 9):
//   small: a 5,835,012-parameter U-Net (channels 64/128/128, 1 layer per block, down CrossAttn,
//          CrossAttn, plain; up plain, CrossAttn, CrossAttn; cross-attention width 64, 4 heads,
//          16 groups) at 16x16 latents, context 12 tokens: forward + MSE + backward + AdamW,
//          at batch 16 and batch 1;
//   sd:    the SD-1.5-size U-Net at 16x16 latents, batch 1, frozen weights (f16 where the adapter
//          has shader-f16, as the loaders keep them): forward, then backward to the input only
//          (what LoRA training costs), and its forward alone at batch 2.
//
//   deno task bench:train                      (small configs, then the PyTorch peer)
//   deno run -A bench/train_step_bench.ts [--cases small16,small1,sd1,sdfwd2] [--steps 5]
//     [--warmup 1] [--no-peer] [--profile]
// Prints median ms per step (of --steps after --warmup), peak GPU bytes, and the ratio to
// PyTorch measured in the same run (bench/peers/torch_train_step.py, Debian's python3-torch;
// DENOISE_PEER_PYTHON names another interpreter, DENOISE_PEER_DEVICE=cuda runs it on the GPU).
// `--profile` also prints the per-kernel profile of one step per case.
// Under `deno bench` it registers the batch-1 small step only.
import { parseArgs } from "node:util";
import {
  AdamW,
  backward,
  deviceInfo,
  formatProfile,
  Generator,
  getDevice,
  memoryStats,
  mseLoss,
  noGrad,
  profile,
  randn,
  resetPeakBytes,
  scope,
  SD15_UNET_CONFIG,
  sync,
  UNet2DConditionModel,
  type UNetConfig,
} from "../mod.ts";

/** The small config of the issue (5,835,012 parameters). */
export const SMALL_UNET: Partial<UNetConfig> = {
  blockOutChannels: [64, 128, 128],
  layersPerBlock: 1,
  downBlockTypes: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  upBlockTypes: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  crossAttentionDim: 64,
  attentionHeads: 4,
  normNumGroups: 16,
};
const SMALL_PARAMS = 5_835_012;

interface Case {
  name: string;
  /** Sets up the model and returns the timed step (it waits for the GPU itself). */
  setup(): { params: number; step: () => Promise<void>; dispose(): void };
}

function sizeOf(unet: UNet2DConditionModel): number {
  return unet.parameters().reduce((a, p) => a + p.value.size, 0);
}

function smallTrain(batch: number): Case {
  return {
    name: `small${batch}`,
    setup() {
      const g = new Generator(1);
      const unet = new UNet2DConditionModel(SMALL_UNET, { generator: g });
      const params = unet.trainableParameters().map((p) => p.value);
      const opt = new AdamW(params, { lr: 1e-4 });
      const x = randn([batch, 4, 16, 16], { generator: g });
      const ctx = randn([batch, 12, 64], { generator: g });
      const noise = randn([batch, 4, 16, 16], { generator: g });
      const ts = Array.from({ length: batch }, (_, i) => (i * 997) % 1000);
      return {
        params: sizeOf(unet),
        step: async () => {
          scope(() => backward(mseLoss(unet.forward(x, ts, ctx), noise)));
          opt.step();
          opt.zeroGrad();
          await sync();
        },
        dispose: () => {
          for (const t of [x, ctx, noise]) t.dispose();
          opt.dispose();
          unet.dispose();
        },
      };
    },
  };
}

function sdUNet(): UNet2DConditionModel {
  const unet = new UNet2DConditionModel(SD15_UNET_CONFIG, {
    weightDType: deviceInfo().f16 ? "f16" : "f32",
    generator: new Generator(2),
  });
  return unet.freeze();
}

const sdFrozenStep: Case = {
  name: "sd1",
  setup() {
    const unet = sdUNet();
    const x = randn([1, 4, 16, 16], { requiresGrad: true });
    const ctx = randn([1, 77, 768]);
    const noise = randn([1, 4, 16, 16]);
    return {
      params: sizeOf(unet),
      step: async () => {
        scope(() => backward(mseLoss(unet.forward(x, 500, ctx), noise)));
        x.grad?.dispose();
        x.grad = null;
        await sync();
      },
      dispose: () => {
        for (const t of [x, ctx, noise]) t.dispose();
        unet.dispose();
      },
    };
  },
};

const sdForward2: Case = {
  name: "sdfwd2",
  setup() {
    const unet = sdUNet();
    const x = randn([2, 4, 16, 16]);
    const ctx = randn([2, 77, 768]);
    return {
      params: sizeOf(unet),
      step: async () => {
        scope(() => noGrad(() => unet.forward(x, 500, ctx)).dispose());
        await sync();
      },
      dispose: () => {
        for (const t of [x, ctx]) t.dispose();
        unet.dispose();
      },
    };
  },
};

const CASES: Record<string, Case> = {
  small16: smallTrain(16),
  small1: smallTrain(1),
  sd1: sdFrozenStep,
  sdfwd2: sdForward2,
};

function median(a: readonly number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Result {
  name: string;
  params: number;
  medianMs: number;
  peakBytes: number;
  steps: number[];
}

async function runCase(c: Case, steps: number, warmup: number, prof: boolean): Promise<Result> {
  const s = c.setup();
  if (c.name.startsWith("small") && s.params !== SMALL_PARAMS) {
    throw new Error(`The small U-Net has ${s.params} parameters, expected ${SMALL_PARAMS}`);
  }
  for (let i = 0; i < warmup; i++) await s.step();
  const times: number[] = [];
  let peak = 0;
  for (let i = 0; i < steps; i++) {
    resetPeakBytes();
    const t0 = performance.now();
    await s.step();
    times.push(performance.now() - t0);
    peak = Math.max(peak, memoryStats().peakBytes);
  }
  if (prof) {
    const report = await profile(s.step);
    console.log(`\n### profile of one ${c.name} step\n\n${formatProfile(report, 10)}\n`);
  }
  s.dispose();
  return { name: c.name, params: s.params, medianMs: median(times), peakBytes: peak, steps: times };
}

interface PeerResult {
  name: string;
  params: number;
  medianMs: number;
}

async function runPeer(cases: string[], steps: number, warmup: number): Promise<PeerResult[]> {
  const script = new URL("./peers/torch_train_step.py", import.meta.url).pathname;
  const python = Deno.env.get("DENOISE_PEER_PYTHON") ?? "/usr/bin/python3";
  const device = Deno.env.get("DENOISE_PEER_DEVICE") ?? "cpu";
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(python, {
      args: [
        script,
        "--cases",
        cases.join(","),
        "--steps",
        `${steps}`,
        "--warmup",
        `${warmup}`,
        "--device",
        device,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
  } catch {
    console.log(
      `PyTorch peer skipped: ${python} was not found; \`apt-get install python3-torch\``,
    );
    return [];
  }
  if (out.code === 3) {
    console.log("PyTorch peer skipped: no torch module; `apt-get install python3-torch` (Debian)");
    return [];
  }
  if (out.code !== 0) throw new Error(`The PyTorch peer failed with exit code ${out.code}`);
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as PeerResult);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      cases: { type: "string", default: "small16,small1" },
      steps: { type: "string", default: "5" },
      warmup: { type: "string", default: "1" },
      "no-peer": { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
    },
  });
  const names = values.cases.split(",");
  for (const n of names) {
    if (!CASES[n]) {
      throw new Error(`Unknown case "${n}"; pick from ${Object.keys(CASES).join(", ")}`);
    }
  }
  const steps = Number(values.steps), warmup = Number(values.warmup);
  const { description } = await getDevice();
  const ours: Result[] = [];
  for (const n of names) {
    const r = await runCase(CASES[n]!, steps, warmup, values.profile);
    console.log(
      `ours ${r.name}: ${r.params} params, median ${r.medianMs.toFixed(0)} ms ` +
        `(${r.steps.map((t) => t.toFixed(0)).join(", ")}), peak ${r.peakBytes} bytes`,
    );
    ours.push(r);
  }
  const peer = values["no-peer"] ? [] : await runPeer(names, steps, warmup);
  console.log(
    `\nAdapter: ${description}; ${new Date().toISOString().slice(0, 10)}; ` +
      `\`deno run -A bench/train_step_bench.ts ${Deno.args.join(" ")}\`\n`,
  );
  console.log("| case | params | ours median ms | peak bytes | PyTorch median ms | ratio |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const r of ours) {
    const p = peer.find((x) => x.name === r.name);
    if (p && p.params !== r.params) {
      throw new Error(`${r.name}: PyTorch has ${p.params} parameters, ours ${r.params}`);
    }
    console.log(
      `| ${r.name} | ${r.params} | ${r.medianMs.toFixed(0)} | ${r.peakBytes} | ` +
        `${p ? p.medianMs.toFixed(0) : "-"} | ${
          p ? (r.medianMs / p.medianMs).toFixed(2) + "x" : "-"
        } |`,
    );
  }
} else {
  await getDevice();
  const s = CASES.small1!.setup();
  await s.step(); // compile pipelines
  Deno.bench({
    group: "train",
    name: "train step f32 5.8M U-Net 1x4x16x16",
    n: 3,
    warmup: 1,
    fn: async (b) => {
      b.start();
      await s.step();
      b.end();
    },
  });
}
