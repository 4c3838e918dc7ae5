// The EMA of mod.ts pretrain's U-Net stage (--ema, --ema-decay): the GPU update follows the CPU
// reference of diffusers' EMAModel rule through the warm-up into the decay cap; the written model
// holds the average, not the trained weights; a killed run resumed with its EMA ends bit for bit
// like an uninterrupted one; mismatched resumes and bad flags are refused.
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { copy, tensor } from "../src/ops/creation.ts";
import { copyBuffer } from "../src/ops/runtime.ts";
import { SafetensorsFile } from "../src/nn/safetensors_fs.ts";
import { PRETRAIN_HELP, pretrainCommand } from "../src/cli/pretrain.ts";
import { UsageError } from "../src/cli/_args.ts";
import { emaDecayAt, emaRef, EmaWeights } from "../src/train/ema.ts";
import { pretrain, type PretrainOptions, type PretrainResult } from "../src/train/pretrain_fs.ts";
import { readPretrainResume } from "../src/train/pretrain_resume_fs.ts";
import { source, tinyPretrainOptions } from "./_pretrain_fixture.ts";
import { assertClose, randomData } from "./_helpers.ts";

Deno.test("emaDecayAt() is diffusers' get_decay without warm-up power: 0, then (1 + s) / (10 + s) capped", () => {
  equal(emaDecayAt(0.9999, 1), 0);
  equal(emaDecayAt(0.9999, 2), 2 / 11);
  equal(emaDecayAt(0.9999, 11), 11 / 20);
  equal(emaDecayAt(0.3, 5), 0.3); // 5 / 14 > 0.3
});

Deno.test("EmaWeights.update() matches the CPU reference through the warm-up and the cap, and swap() exchanges", async () => {
  // decay 0.3: updates 1-4 use the warm-up decays 0, 2/11, 3/12, 4/13, updates 5-6 the cap
  const sizes = [7, 12], decay = 0.3;
  const params = sizes.map((n, i) => tensor(randomData(n, i + 1), [n]));
  const ema = new EmaWeights(params, decay);
  const want = params.map((_, i) => Float64Array.from(randomData(sizes[i]!, i + 1)));
  const raw: Float64Array[] = sizes.map((n) => new Float64Array(n));
  for (let step = 1; step <= 6; step++) {
    params.forEach((p, i) => {
      // what an optimizer step would do: new values written into the parameter in place
      raw[i] = randomData(sizes[i]!, 100 * step + i);
      using next = tensor(raw[i]!, [sizes[i]!]);
      copyBuffer(next.buffer, 0, p.buffer, 0, p.bytes);
    });
    ema.update();
    want.forEach((w, i) => emaRef(w, raw[i]!, decay, step));
  }
  equal(ema.updates, 6);
  // f32 on the GPU vs float64: six updates of values in [-1, 1) keep within a few f32 ulps
  for (const [i, s] of ema.state().shadow.entries()) {
    assertClose(await s.toArray(), want[i]!, 1e-6, 0);
  }
  ema.swap();
  for (const [i, p] of params.entries()) {
    assertClose(await p.toArray(), want[i]!, 1e-6, 0);
    // the shadow now holds the trained values, exactly
    deepEqual(await ema.state().shadow[i]!.toArray(), Float32Array.from(raw[i]!));
  }
  ema.swap();
  for (const [i, p] of params.entries()) {
    deepEqual(await p.toArray(), Float32Array.from(raw[i]!));
  }
  ema.dispose();
  for (const p of params) p.dispose();
});

Deno.test("EmaWeights.loadState() takes a saved shadow and count; update() refuses while swapped", async () => {
  const p = tensor([1, 2, 3], [3]);
  const ema = new EmaWeights([p], 0.5);
  ema.loadState({ updates: 4, shadow: [tensor([3, 2, 1], [3])] });
  ema.update(); // update 5: decay min(0.5, 5 / 14)
  const d = 5 / 14;
  const want = [1, 2, 3].map((v, i) => d * (3 - i) + (1 - d) * v);
  assertClose(await ema.state().shadow[0]!.toArray(), want, 1e-6, 0);
  ema.swap();
  let message = "";
  try {
    ema.update();
  } catch (e) {
    message = (e as Error).message;
  }
  ok(/swap\(\) them back first/.test(message), message);
  let shapeMessage = "";
  using other = copy(p);
  const e2 = new EmaWeights([other], 0.5);
  try {
    e2.loadState({ updates: 1, shadow: [tensor([1, 2], [2])] });
  } catch (e) {
    shapeMessage = (e as Error).message;
  }
  ok(/has shape \[2\], but its parameter is \[3\]/.test(shapeMessage), shapeMessage);
  for (const x of [ema, e2, p]) x.dispose();
});

async function tempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denoise_ema_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// 1 VAE step, 4 U-Net steps saved every 2, EMA decay 0.5 (the warm-up decays 0, 2/11, 3/12, 4/13)
function options(out: string, extra: Partial<PretrainOptions> = {}): PretrainOptions {
  return tinyPretrainOptions(out, {
    steps: 4,
    vaeSteps: 1,
    saveEveryNSteps: 2,
    emaDecay: 0.5,
    ...extra,
  });
}

async function tensors(path: string): Promise<Map<string, Uint8Array>> {
  using f = await SafetensorsFile.open(path);
  const out = new Map<string, Uint8Array>();
  for (const k of f.keys) out.set(k, await f.readRaw(k));
  return out;
}

/** f32 safetensors bytes as the f16 bytes the model folder stores. */
function f16Bytes(f32: Uint8Array): Uint8Array {
  const v = new Float32Array(f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength));
  return new Uint8Array(Float16Array.from(v).buffer);
}

/** Checks that a finished EMA run wrote the average, not the trained weights, and recorded it. */
async function checkWritesEma(r: PretrainResult): Promise<void> {
  // the final state holds the trained weights and, beside them, their average
  const state = join(r.model!, "..", "state");
  const trained = await tensors(join(state, "weights.safetensors"));
  const ema = await tensors(join(state, "ema.safetensors"));
  deepEqual([...ema.keys()].sort(), [...trained.keys()].sort());
  let differ = 0;
  for (
    const [prefix, file] of [
      ["unet.", "unet/diffusion_pytorch_model.safetensors"],
      ["text_encoder.", "text_encoder/model.safetensors"],
    ]
  ) {
    const written = await tensors(join(r.model!, file!));
    for (const [k, avg] of ema) {
      if (!k.startsWith(prefix!)) continue;
      const w = written.get(k.slice(prefix!.length))!;
      deepEqual(w, f16Bytes(avg), `${k} is not the EMA`);
      const raw = f16Bytes(trained.get(k)!);
      differ += raw.some((b, i) => b !== w[i]) ? 1 : 0;
    }
  }
  // four steps apart from the trained weights, the average differs in (nearly) every tensor
  ok(differ > ema.size / 2, `${differ} of ${ema.size} written tensors differ from the trained`);
  using f = await SafetensorsFile.open(
    join(r.model!, "unet", "diffusion_pytorch_model.safetensors"),
  );
  equal(f.metadata.denoise_ema_decay, "0.5");
  const history = JSON.parse(f.metadata.denoise_history!) as { ema_decay?: number }[];
  equal(history.at(-1)!.ema_decay, 0.5);
  const report = await Deno.readTextFile(join(r.model!, "..", "logs", "unet", "report.html"));
  ok(report.includes("ema_decay"), "the report does not list the EMA decay");
}

Deno.test("pretrain() with emaDecay writes the EMA, not the trained weights; killed in the U-Net stage and resumed it ends with the same weights; mismatched resumes are refused", () =>
  tempDir(async (dir) => {
    const whole = await pretrain(source, options(join(dir, "whole")));
    await checkWritesEma(whole);
    const out = join(dir, "cut");
    // the state of U-Net step 2 is saved, step 3 runs, then the run dies
    let died = false;
    const kill = (line: string) => {
      if (line.startsWith("unet step 3/")) throw new Error("killed");
    };
    await pretrain(source, options(out, { print: kill })).catch((e) => {
      died = (e as Error).message === "killed";
    });
    ok(died, "the run was not killed");
    const state = join(out, "state");
    // checked before anything trains
    for (
      const [emaDecay, want] of [
        [0, /saved with an EMA of decay 0\.5, not 0; resume with --ema-decay 0\.5/],
        [0.9, /saved with an EMA of decay 0\.5, not 0\.9/],
      ] as const
    ) {
      await rejects(
        () => readPretrainResume(options(out, { resume: state, emaDecay }), "tiny", 32),
        want,
      );
    }
    const resumed = await pretrain(source, options(out, { resume: state }));
    for (
      const file of [
        "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
      ]
    ) {
      const a = await tensors(join(whole.model!, file)),
        b = await tensors(join(resumed.model!, file));
      deepEqual([...a.keys()], [...b.keys()]);
      for (const [k, v] of a) deepEqual(b.get(k), v, `${file}:${k} differs after the resume`);
    }
    // the reverse: a state saved without an EMA (no decay in its extra, no ema.safetensors)
    const json = join(state, "train_state.json");
    const s = JSON.parse(await Deno.readTextFile(json));
    delete s.extra.emaDecay;
    await Deno.writeTextFile(json, JSON.stringify(s));
    await rejects(
      () => readPretrainResume(options(out, { resume: state }), "tiny", 32),
      /saved without an EMA; resume without --ema and --ema-decay/,
    );
    // a state whose EMA file is missing
    s.extra.emaDecay = 0.5;
    await Deno.writeTextFile(json, JSON.stringify(s));
    await Deno.remove(join(state, "ema.safetensors"));
    await rejects(
      () => readPretrainResume(options(out, { resume: state }), "tiny", 32),
      /has no ema\.safetensors/,
    );
  }));

Deno.test("mod.ts pretrain --ema and --ema-decay: shown in --help, bad decays refused, no EMA outside the U-Net stage", () =>
  tempDir(async (dir) => {
    ok(/--ema\b/.test(PRETRAIN_HELP) && /--ema-decay <x>/.test(PRETRAIN_HELP), PRETRAIN_HELP);
    const run = ["--size", "tiny", "--steps", "1", "--batch-size", "1", "--out", dir];
    for (const bad of ["0", "1", "1.5", "-0.1", "x", "1e-4"]) {
      await rejects(
        () => pretrainCommand([...run, `--ema-decay=${bad}`]),
        (e: Error) =>
          e instanceof UsageError &&
          /--ema-decay must be a decimal number (from 0 to 1|between 0 and 1, both excluded), such as 0\.9999;/
            .test(e.message),
        bad,
      );
    }
    // both flags reach the run: a VAE-only run refuses them before any model is built
    for (const flags of [["--ema"], ["--ema-decay", "0.99"]]) {
      await rejects(
        () => pretrainCommand([...run, "--stage", "vae", ...flags]),
        /--ema averages the U-Net stage's weights, which --stage vae does not train/,
      );
    }
  }));
