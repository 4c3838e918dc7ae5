// mod.ts pretrain end to end on tiny models: the written f16 diffusers folder loads through our
// loaders, samples an image and names the command in its metadata; a run killed after a saved
// state and resumed ends with the same weights, bit for bit, as one uninterrupted run.
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { loadDiffusersFolder } from "../src/nn/loaders_fs.ts";
import { SafetensorsFile } from "../src/nn/safetensors_fs.ts";
import { readSchedulerOptions } from "../src/cli/scheduler_config.ts";
import { textToImage } from "../src/cli/text_to_image.ts";
import { pretrainCommand } from "../src/cli/pretrain.ts";
import { UsageError } from "../src/cli/_args.ts";
import { pretrain, type PretrainOptions } from "../src/train/pretrain_fs.ts";
import { source, tinyPretrainOptions } from "./_pretrain_fixture.ts";
import "./_helpers.ts"; // acquires the GPU device

async function tempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denoise_pretrain_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("mod.ts pretrain writes an f16 diffusers folder that loads, samples and names its command", () =>
  tempDir(async (dir) => {
    const out = join(dir, "run");
    const args = [
      "--size",
      "tiny",
      "--steps",
      "2",
      "--batch-size",
      "2",
      "--out",
      out,
      "--seed",
      "4",
    ];
    const log = console.log;
    console.log = () => {};
    try {
      equal(await pretrainCommand(args), 0);
    } finally {
      console.log = log;
    }
    const model = join(out, "model");
    for (
      const f of ["model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json"]
    ) {
      ok((await Deno.stat(join(model, f))).isFile, `${f} missing`);
    }
    using f = await SafetensorsFile.open(
      join(model, "unet", "diffusion_pytorch_model.safetensors"),
    );
    equal(f.info("conv_in.weight").dtype, "F16");
    equal(f.metadata.denoise_command, ["deno run -A mod.ts pretrain", ...args].join(" "));
    equal(f.metadata.denoise_seed, "4");
    equal(f.metadata.denoise_unet_steps, "2");
    ok(Number(f.metadata.denoise_wall_time_s) > 0);
    for (const stage of ["vae", "unet"]) {
      for (const name of ["report.html", "loss_curve.svg", "losses.jsonl", "losses.csv"]) {
        ok((await Deno.stat(join(out, "logs", stage, name))).size > 0, `${stage}/${name} missing`);
      }
    }
    // the U-Net stage's report shows the 8 sample prompts drawn when it ended
    const report = await Deno.readTextFile(join(out, "logs", "unet", "report.html"));
    equal(report.match(/src="data:image\/jpeg;base64,/g)?.length, 8);
    const models = await loadDiffusersFolder(model);
    try {
      const img = await textToImage(models, {
        prompt: "two red circles on blue",
        steps: 2,
        width: 32,
        height: 32,
        seed: 1,
        scheduler: await readSchedulerOptions(model),
      });
      equal(img.rgb.length, 32 * 32 * 3);
      // the VAE stage fixed the latent scale (LDM's scale_by_std), not SD's 0.18215
      ok(models.vae.scalingFactor !== 0.18215 && models.vae.scalingFactor > 0);
    } finally {
      for (const m of [models.unet, models.vae, models.textEncoder]) m.dispose();
    }
  }));

function options(out: string, extra: Partial<PretrainOptions> = {}): PretrainOptions {
  return tinyPretrainOptions(out, { steps: 4, vaeSteps: 4, saveEveryNSteps: 2, ...extra });
}

async function weights(model: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (
    const p of ["unet/diffusion_pytorch_model", "vae/diffusion_pytorch_model", "text_encoder/model"]
  ) {
    using f = await SafetensorsFile.open(join(model, `${p}.safetensors`));
    for (const k of f.keys) out.set(`${p}:${k}`, await f.readRaw(k));
  }
  return out;
}

/** Throws from the progress line of `stage` step `step`: a kill right after that step. */
function killAt(stage: string, step: number): (line: string) => void {
  return (line) => {
    if (line.startsWith(`${stage} step ${step}/`)) throw new Error("killed");
  };
}

for (const stage of ["vae", "unet"] as const) {
  Deno.test(`pretrain() killed in the ${stage} stage and resumed ends with the same weights`, () =>
    tempDir(async (dir) => {
      const whole = await pretrain(source, options(join(dir, "whole")));
      const out = join(dir, "cut");
      // the state of step 2 is saved, step 3 runs, then the run dies
      let died = false;
      await pretrain(source, options(out, { print: killAt(stage, 3) })).catch((e) => {
        died = (e as Error).message === "killed";
      });
      ok(died, "the run was not killed");
      const resumed = await pretrain(source, options(out, { resume: join(out, "state") }));
      const a = await weights(whole.model!), b = await weights(resumed.model!);
      deepEqual([...a.keys()], [...b.keys()]);
      for (const [k, v] of a) deepEqual(b.get(k), v, `${k} differs after the resume`);
      // the loss log keeps one record per step, the killed run's step 3 replaced
      const lines = (await Deno.readTextFile(join(out, "logs", stage, "losses.jsonl"))).trim()
        .split("\n").map((l) => JSON.parse(l).step);
      deepEqual(lines, [1, 2, 3, 4]);
    }));
}

Deno.test("pretrain() --init with the decoder stage changes only the VAE decoder and lists both pieces", () =>
  tempDir(async (dir) => {
    await pretrain(source, options(join(dir, "base"), { steps: 2, vaeSteps: 2, command: "first" }));
    const base = join(dir, "base", "model");
    const r = await pretrain(
      source,
      options(join(dir, "tuned"), { stage: "decoder", init: base, vaeSteps: 3, command: "second" }),
    );
    const before = await weights(base), after = await weights(r.model!);
    let decoderMoved = false;
    for (const [k, v] of before) {
      const same = deepEqualBytes(v, after.get(k)!);
      if (/^vae\/[^:]*:(decoder|post_quant_conv)\./.test(k)) decoderMoved ||= !same;
      else ok(same, `${k} changed`);
    }
    ok(decoderMoved, "the decoder did not train");
    const scale = async (m: string) =>
      JSON.parse(await Deno.readTextFile(join(m, "vae", "config.json"))).scaling_factor;
    equal(await scale(r.model!), await scale(base));
    using f = await SafetensorsFile.open(
      join(r.model!, "unet", "diffusion_pytorch_model.safetensors"),
    );
    const history = JSON.parse(f.metadata.denoise_history!) as { command: string }[];
    deepEqual(history.map((p) => p.command), ["first", "second"]);
  }));

Deno.test("pretrain() refuses --stage decoder without --init, and --init with --resume", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [extra, want] of [
        [{ stage: "decoder" }, /pass --init/],
        [{ init: dir, resume: dir }, /not both/],
      ] as const
    ) {
      let message = "";
      await pretrain(source, options(join(dir, "x"), extra)).catch((e) => message = e.message);
      ok(want.test(message), message);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function deepEqualBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

Deno.test("pretrain() feeds the VAE stage from vaeSource and the U-Net stage from the stream", () =>
  tempDir(async (dir) => {
    const calls: string[] = [];
    const spy = (name: string, from: typeof source) => (start: number, count: number) => {
      calls.push(name);
      return from(start, count);
    };
    await pretrain(
      spy("stream", source),
      options(dir, { steps: 2, vaeSteps: 2, vaeSource: spy("vae", source) }),
    );
    // two VAE steps and the latent-scale batch, then two U-Net steps
    deepEqual(calls, ["vae", "vae", "vae", "stream", "stream"]);
  }));

Deno.test("pretrain() --vae-channels sets the VAE's widths, recorded in its config; widths that do not fit the norm groups are refused", () =>
  tempDir(async (dir) => {
    const r = await pretrain(
      source,
      options(join(dir, "wide"), { steps: 1, vaeSteps: 1, vaeChannels: [12, 16, 16] }),
    );
    const config = JSON.parse(await Deno.readTextFile(join(r.model!, "vae", "config.json")));
    deepEqual(config.block_out_channels, [12, 16, 16]);
    let message = "";
    await pretrain(source, options(join(dir, "bad"), { vaeChannels: [10, 16, 16] }))
      .catch((e) => message = e.message);
    ok(message.includes("multiples of the tiny size's 4 norm groups"), message);
  }));

Deno.test("mod.ts pretrain --vae-channels takes 2 to 4 whole widths, multiples of 4", async () => {
  const dir = await Deno.makeTempDir();
  // a tiny one-step run, should a bad list get through
  const run = ["--size", "tiny", "--steps", "1", "--batch-size", "1", "--out", dir];
  try {
    for (const bad of ["3,x", "6,8", "32", "32,64,64,64,64"]) {
      await rejects(() => pretrainCommand([...run, "--vae-channels", bad]), UsageError, bad);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
