// `mod.ts eval --ablation adabn` end to end at a tiny size (tiny batch-norm and group-norm models
// written here, 1 seed, 2 steps, 2 images): table, JSON and SVG carry every condition with finite
// values where they apply, the conditions really differ (AdaBN statistics and LoRA files are
// applied), the LoRA files carry what their condition trains; bad options fail before any work.
import { deepEqual, equal, notEqual, ok, rejects } from "node:assert/strict";
import { rejectsWith } from "./_train_helpers.ts";
import { join } from "node:path";
import "./_helpers.ts"; // acquires the GPU device
import { Generator } from "../src/ops/rng.ts";
import { AutoencoderKL, CLIPTextModel, UNet2DConditionModel } from "../src/nn/mod.ts";
import { saveDiffusersFolder } from "../src/nn/loaders_fs.ts";
import { SafetensorsFile } from "../src/nn/safetensors_fs.ts";
import { UsageError } from "../src/cli/_args.ts";
import { adabnAblationCommand } from "../src/cli/ablation_adabn.ts";
import { evalCommand } from "../src/cli/eval.ts";
import { TINY_CLIP, TINY_TOKENIZER } from "./_sd_fixture.ts";

/**
 * A tiny model at the mini model's latent size (32x32 images -> 8x8 latents: a three-block VAE),
 * narrower than `_sd_fixture.ts`'s: half the time per condition, and the run has 13 parts.
 */
async function writeSmallModel(path: string, norm: "batch" | "group"): Promise<void> {
  const g = new Generator(3);
  const m = {
    unet: new UNet2DConditionModel({
      blockOutChannels: [16, 32],
      layersPerBlock: 1,
      attentionHeads: 2,
      crossAttentionDim: TINY_CLIP.hiddenSize!,
      normNumGroups: 8,
      norm,
    }, { generator: g }),
    vae: new AutoencoderKL({ blockOutChannels: [8, 16, 16], layersPerBlock: 1, normNumGroups: 4 }, {
      generator: g,
    }),
    textEncoder: new CLIPTextModel(TINY_CLIP, { generator: g }),
    tokenizerFiles: TINY_TOKENIZER,
  };
  await saveDiffusersFolder(path, m);
  [m.unet, m.vae, m.textEncoder].forEach((x) => x.dispose());
}

const NAMES = [
  "base (BN)",
  "AdaBN only (BN)",
  "LoRA (BN)",
  "LoRA + AdaBN before (BN)",
  "LoRA + AdaBN during (BN)",
  "base (GN)",
  "LoRA (GN)",
  "LoRA + norm deltas (GN)",
];
const TRAINED = new Set([2, 3, 4, 6, 7]);

interface Results {
  measures: { key: string }[];
  conditions: { name: string; measures: Record<string, { values: (number | null)[] }> }[];
  conditionKeys: string[];
  training: Record<string, {
    file: string;
    heldOut: { step: number; loss: number }[];
    smoothedLoss: number[];
  }[]>;
  claims: string[];
}

async function keys(file: string): Promise<string[]> {
  using f = await SafetensorsFile.open(file);
  return [...f.keys];
}

async function models(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "ablation_adabn_" });
  await writeSmallModel(join(root, "bn"), "batch");
  await writeSmallModel(join(root, "gn"), "group");
  return root;
}

Deno.test("eval --ablation adabn runs every condition end to end at a tiny size", async () => {
  const root = await models();
  try {
    const out = join(root, "out");
    const code = await adabnAblationCommand([
      ...["--model", join(root, "gn"), "--bn-model", join(root, "bn"), "--seeds", "1"],
      ...["--steps", "2", "--images", "2", "--n", "2", "--sample-steps", "1", "--lr", "0.01"],
      ...["--output-dir", out],
    ]);
    equal(code, 0);
    const table = await Deno.readTextFile(join(out, "table.md"));
    for (const name of NAMES) ok(table.includes(`| ${name} |`), `no row ${name}:\n${table}`);
    ok(table.includes("faded palette"), "the table states the target domain");
    const svg = await Deno.readTextFile(join(out, "chart.svg"));
    ok(svg.startsWith("<svg") && NAMES.every((n) => svg.includes(n)), svg.slice(0, 200));

    const r = JSON.parse(await Deno.readTextFile(join(out, "results.json"))) as Results;
    deepEqual(r.conditions.map((c) => c.name), NAMES);
    equal(r.measures.length, 9);
    const value = (i: number, k: string) => r.conditions[i]!.measures[k]!.values[0];
    r.conditions.forEach((c, i) => {
      for (const m of r.measures) {
        const v = c.measures[m.key]!.values;
        equal(v.length, 1, `${c.name} ${m.key}`);
        if (m.key === "steps" && !TRAINED.has(i)) equal(v[0], null, `${c.name}: no training`);
        else ok(Number.isFinite(v[0]), `${c.name} ${m.key}: ${v[0]}`);
      }
    });
    const steps = [...TRAINED].map((i) => value(i, "steps")!);
    ok(steps.every((s) => s === 1 || s === 2), `steps within the run: ${steps}`);
    // the conditions differ where they should: AdaBN statistics and the LoRA files are applied
    // (exact inequality: the same weights and statistics give bit-identical losses)
    notEqual(value(1, "loss_target"), value(0, "loss_target"), "AdaBN only differs from base");
    notEqual(value(2, "loss_target"), value(0, "loss_target"), "LoRA differs from base");
    notEqual(value(3, "loss_target"), value(2, "loss_target"), "AdaBN before differs from LoRA");
    notEqual(value(7, "loss_target"), value(6, "loss_target"), "norm deltas differ from LoRA");
    // the plain LoRA files hold no statistics and no norm deltas; the others do
    const file = (key: string) => r.training[key]![0]!.file;
    const has = async (key: string, re: RegExp) => (await keys(file(key))).some((k) => re.test(k));
    equal(await has("lora_bn", /^adabn/), false);
    equal(await has("lora_adabn_before", /^adabn/), true);
    equal(await has("lora_adabn_during", /^adabn/), true);
    equal(await has("lora_gn", /w_norm/), false);
    equal(await has("lora_norms_gn", /w_norm/), true);
    const run = r.training.lora_adabn_during![0]!;
    equal(run.smoothedLoss.length, 2, "the smoothed loss of every step");
    deepEqual(run.heldOut.map((x) => x.step), [1, 2], "a checkpoint every step by default");
    ok(run.heldOut.every((x) => Number.isFinite(x.loss)), JSON.stringify(run.heldOut));
    // the step-1 checkpoint is measured itself (lr 0.01: one more step moves the loss); the
    // last point is the final file's, the table's target loss
    notEqual(run.heldOut[0]!.loss, run.heldOut[1]!.loss);
    notEqual(run.heldOut[0]!.loss, value(0, "loss_target"), "the checkpoint is applied");
    equal(run.heldOut[1]!.loss, value(4, "loss_target"));
    equal(r.claims.length, 12);
    ok(r.claims.every((l) => /: (held|did not hold|not shown) \(/.test(l)), r.claims.join("\n"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("eval --ablation adabn: bad options fail with clear errors before any work", async () => {
  const root = await models();
  try {
    const out = join(root, "out");
    const run = (args: string[]) =>
      adabnAblationCommand([
        ...["--model", join(root, "gn"), "--bn-model", join(root, "bn"), "--output-dir", out],
        ...args,
      ]);
    const bad: [string[], string][] = [
      [["--seeds", "1,1"], '--seeds names "1" twice'],
      [["--seeds", "1,x"], "--seeds must be a whole number from 0 to 998"],
      [["--steps", "0"], "--steps must be a whole number from 1 to 100000"],
      [["--steps", "2", "--eval-every", "3"], "--eval-every must be a whole number from 1 to 2"],
      [["--n", "1"], "the Fréchet distance needs two"],
      [["--threshold-drop", "100"], "--threshold-drop must be a decimal number from 0 to 99"],
      [["--frobnicate"], 'has no option "--frobnicate"'],
      [
        ["--bn-model", join(root, "gn")],
        'has a U-Net with "group" norm; this option takes a batch-norm model',
      ],
      [
        ["--model", join(root, "bn")],
        'has a U-Net with "batch" norm; this option takes a group-norm model',
      ],
      [
        ["--bn-model", join(root, "nowhere")],
        "is not a diffusers model folder (no unet/config.json)",
      ],
    ];
    for (const [args, text] of bad) await rejectsWith(() => run(args), UsageError, text);
    await rejects(Deno.stat(out), Deno.errors.NotFound, "nothing was written");
    equal(await evalCommand(["--ablation", "adabn", "--help"]), 0);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
