// Hostile or broken inputs to the library get typed errors instead of crashes, hangs or silent
// wrong output: a 60,000-character CJK prompt, missing / null / array configs, a zero VAE
// scaling factor, a FIFO as a model path, PyTorch pickles, scheduler configs (v-prediction is
// honoured, x0-prediction refused), and NaN after the VAE decode.
import { equal, notDeepEqual, ok, rejects, throws } from "node:assert/strict";
import { ClipTokenizer } from "../src/nn/tokenizer.ts";
import { SafetensorsError, StateDictError } from "../src/nn/errors.ts";
import { parseSafetensors } from "../src/nn/safetensors.ts";
import { SafetensorsFile } from "../src/nn/safetensors_fs.ts";
import {
  loadDiffusersFolder,
  loadStableDiffusion,
  saveDiffusersFolder,
} from "../src/nn/loaders_fs.ts";
import { NonFiniteError } from "../src/schedule/sampler.ts";
import {
  readSchedulerOptions,
  SchedulerConfigError,
  schedulerOptionsFromDiffusers,
} from "../src/cli/scheduler_config.ts";
import { textToImage } from "../src/cli/text_to_image.ts";
import { TINY_TOKENIZER, tinyModels } from "./_sd_fixture.ts";
import "./_helpers.ts"; // acquires the GPU device

async function withModel(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denoise_hard_" });
  try {
    const m = tinyModels(9);
    await saveDiffusersFolder(dir, m);
    [m.unet, m.vae, m.textEncoder].forEach((x) => x.dispose());
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function names(...parts: string[]): (e: unknown) => boolean {
  return (e: unknown) => {
    ok(e instanceof Error && /^[A-Z]/.test(e.message) && !e.message.endsWith("."), String(e));
    for (const p of parts) ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  };
}

Deno.test("ClipTokenizer encodes a 60,000-character CJK prompt without overflowing the stack", () => {
  const tok = ClipTokenizer.fromText(TINY_TOKENIZER.vocab, TINY_TOKENIZER.merges);
  const text = "猫".repeat(60_000); // one pre-token word of 180,000 byte pieces
  const { ids, length } = tok.encode(text, { maxLength: 8 });
  equal(ids.length, 8);
  equal(length, 8);
  equal(tok.tokenize(text).length, 180_000);
});

for (
  const [what, content, part] of [
    ["missing", undefined, "is missing"],
    ["null", "null", "is null"],
    ["an array", "[1, 2]", "is an array"],
    ["not JSON", "{", "not valid JSON"],
  ] as const
) {
  Deno.test(`loadDiffusersFolder() names a unet/config.json that is ${what}`, () =>
    withModel(async (dir) => {
      const path = `${dir}/unet/config.json`;
      if (content === undefined) await Deno.remove(path);
      else await Deno.writeTextFile(path, content);
      await rejects(loadDiffusersFolder(dir), (e: unknown) => {
        ok(e instanceof StateDictError, String(e));
        return names(path, part)(e);
      });
    }));
}

Deno.test("loadDiffusersFolder() refuses a VAE scaling_factor of 0", () =>
  withModel(async (dir) => {
    const path = `${dir}/vae/config.json`;
    const c = JSON.parse(await Deno.readTextFile(path));
    await Deno.writeTextFile(path, JSON.stringify({ ...c, scaling_factor: 0 }));
    await rejects(loadDiffusersFolder(dir), names("scaling_factor", path, "positive"));
  }));

Deno.test("a FIFO as a model path is refused before it is opened (no hang)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denoise_fifo_" });
  try {
    const fifo = `${dir}/model.safetensors`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    equal(made.code, 0, "mkfifo failed");
    await rejects(loadStableDiffusion(fifo), names("not a regular file"));
    await rejects(SafetensorsFile.open(fifo), (e: unknown) => {
      ok(e instanceof SafetensorsError);
      return names("not a regular file")(e);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a FIFO as a config, vocab or scheduler file is refused, not read (no hang)", () =>
  withModel(async (dir) => {
    for (
      const [file, loader] of [
        ["unet/config.json", () => loadDiffusersFolder(dir)],
        ["tokenizer/vocab.json", () => loadDiffusersFolder(dir)],
        ["scheduler/scheduler_config.json", () => readSchedulerOptions(dir)],
      ] as const
    ) {
      const path = `${dir}/${file}`;
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      const saved = await Deno.readFile(path).catch(() => null);
      await Deno.remove(path).catch(() => {});
      equal((await new Deno.Command("mkfifo", { args: [path] }).output()).code, 0);
      await rejects(loader(), names(path, "not a regular file"));
      await Deno.remove(path);
      if (saved) await Deno.writeFile(path, saved);
    }
  }));

Deno.test("PyTorch checkpoints (zip or bare pickle) are refused with a conversion command", () => {
  const zip = new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
  const pickle = new Uint8Array([0x80, 0x02, 0x63, 0x63, 0x6f, 0x6c, 0x6c, 0x65, 0, 0, 0, 0]);
  for (const bytes of [zip, pickle]) {
    throws(() => parseSafetensors(bytes, "model.ckpt"), (e: unknown) => {
      ok(e instanceof SafetensorsError);
      return names("model.ckpt", "PyTorch checkpoint", "convert it", "weights_only=True")(e);
    });
  }
});

Deno.test("scheduler configs: v_prediction and the beta schedule are honoured, the rest refused", () => {
  const v = schedulerOptionsFromDiffusers(
    { prediction_type: "v_prediction", beta_schedule: "linear", num_train_timesteps: 500 },
    "s.json",
  );
  equal(v.prediction, "v_prediction");
  equal(v.schedule?.betaSchedule, "linear");
  equal(v.schedule?.trainSteps, 500);
  equal(schedulerOptionsFromDiffusers({}, "s.json").prediction, "epsilon");
  const bad: [unknown, string][] = [
    [{ prediction_type: "sample" }, '"sample"'],
    [{ prediction_type: 3 }, "must be a string"],
    [{ trained_betas: [0.1, 0.2] }, "trained_betas"],
    [{ rescale_betas_zero_snr: true }, "rescale_betas_zero_snr"],
    [{ beta_schedule: "cosine" }, '"cosine"'],
    [{ num_train_timesteps: 1e0 + 0.5 }, "num_train_timesteps"],
    [null, "is null"],
    [[1], "is an array"],
  ];
  for (const [json, part] of bad) {
    throws(() => schedulerOptionsFromDiffusers(json, "s.json"), (e: unknown) => {
      ok(e instanceof SchedulerConfigError, String(e));
      return names("s.json", part)(e);
    });
  }
});

Deno.test("textToImage() follows the folder's prediction_type and checks the VAE output", () =>
  withModel(async (dir) => {
    const models = await loadDiffusersFolder(dir);
    try {
      const opts = { prompt: "a cat", steps: 2, width: 16, height: 16, seed: 3 };
      const eps = await textToImage(models, {
        ...opts,
        scheduler: await readSchedulerOptions(dir),
      });
      await Deno.mkdir(`${dir}/scheduler`);
      await Deno.writeTextFile(
        `${dir}/scheduler/scheduler_config.json`,
        JSON.stringify({ prediction_type: "v_prediction" }),
      );
      const scheduler = await readSchedulerOptions(dir);
      equal(scheduler.prediction, "v_prediction");
      const v = await textToImage(models, { ...opts, scheduler });
      notDeepEqual(v.rgb, eps.rgb, "v-prediction gave the epsilon image");
      // a zero scaling factor sneaked past the loader: the decode is inf/NaN, never a black image
      (models.vae.config as { scalingFactor: number }).scalingFactor = 0;
      await rejects(textToImage(models, opts), (e: unknown) => {
        ok(e instanceof NonFiniteError, String(e));
        return names("VAE decode")(e);
      });
    } finally {
      [models.unet, models.vae, models.textEncoder].forEach((m) => m.dispose());
    }
  }));
