/**
 * `mod.ts sample`: text-to-image with a diffusers folder or a single-file checkpoint, written as
 * a PNG or JPEG (the output's extension decides).
 *
 * @module
 */
import { getDevice } from "../ops/device.ts";
import { SAMPLER_NAMES } from "../schedule/sampler.ts";
import { A1111_SAMPLER_LABELS, K_SAMPLER_NAMES } from "../schedule/k_samplers.ts";
import { SIGMA_SCHEDULES } from "../schedule/sigma_schedules.ts";
import { loadStableDiffusion } from "../nn/loaders_fs.ts";
import { escapeControls, quote } from "../nn/_untrusted.ts";
import {
  choiceOption,
  formatOptions,
  intOption,
  numberOption,
  type OptionTable,
  parseOptions,
  UsageError,
} from "./_args.ts";
import { encodeImage, imageFormat, type RgbImage } from "./_image.ts";
import { checkOutputPath, writeFileAtomic } from "./_output.ts";
import { readSchedulerOptions } from "./scheduler_config.ts";
import { textToImages } from "./text_to_image.ts";
import { decodeImage } from "./_image_read.ts";
import { formatInfotext, jpegWithUserComment, pngWithText, readInfotext } from "./_parameters.ts";
import { infotextFields, valuesFromInfotext } from "./_sample_params.ts";
import { readImageFile } from "./_img2img.ts";
import { imageGrid, numberedPath } from "./_grid.ts";
import { readOriginalConfig } from "./_ldm_fs.ts";
import { createSchedule } from "../schedule/schedules.ts";
import type { SamplerOptions } from "../schedule/sampler.ts";
import type { LdmSettings } from "../nn/ldm_config.ts";
import { applyAdabnSpecs, applyLoraSpecs, LORA_MODES, parseLoraSpec } from "./_lora_spec.ts";
import { bundledModelDir } from "./bundled.ts";

/** The options of `sample`: parsed from this table, and its help printed from it. */
export const SAMPLE_OPTIONS = {
  model: {
    type: "string",
    value: "<path>",
    help: "diffusers folder (unet/, vae/, text_encoder/, tokenizer/, optional scheduler/) or a " +
      "single-file .safetensors checkpoint (default: the bundled mini model, models/mini_sd, " +
      "32x32)",
  },
  prompt: { type: "string", value: "<text>", help: "what to draw (required)" },
  negative: { type: "string", value: "<text>", help: 'negative prompt (default "")' },
  steps: {
    type: "string",
    value: "<n>",
    help: "sampling steps, 1 to the model's training timesteps (1000 for SD 1.x; default 25)",
  },
  cfg: {
    type: "string",
    value: "<scale>",
    help: "classifier-free guidance scale, a decimal number from 0 to 100 (default 7)",
  },
  sampler: {
    type: "string",
    value: "<name>",
    help: `${SAMPLER_NAMES.join(", ")} (diffusers' tables; default dpmpp_2m_karras), ` +
      `${K_SAMPLER_NAMES.join(", ")} (k-diffusion form, ComfyUI's names), or an AUTOMATIC1111 ` +
      `label in quotes (${A1111_SAMPLER_LABELS.join(", ")}; optionally + " Karras" or ` +
      `" Exponential")`,
  },
  schedule: {
    type: "string",
    value: "<name>",
    help: `sigma schedule by ComfyUI's name: ${SIGMA_SCHEDULES.join(", ")}; runs the sampler in ` +
      "k-diffusion form (default: the one the sampler name implies)",
  },
  seed: {
    type: "string",
    value: "<n>",
    help: "noise seed, 0 to 9007199254740991 (2^53 - 1; default 0)",
  },
  width: {
    type: "string",
    value: "<px>",
    help: "image width, 8 to 8192, a multiple of the model's latent factor (64 for SD 1.x; " +
      "default 512)",
  },
  height: { type: "string", value: "<px>", help: "image height, as --width (default 512)" },
  out: {
    type: "string",
    value: "<file>",
    help: "output image, .png or .jpg/.jpeg (default out.png); replaced atomically",
  },
  tokenizer: {
    type: "string",
    value: "<dir>",
    help: "tokenizer folder with vocab.json and merges.txt (needed for single-file checkpoints)",
  },
  lora: {
    type: "string",
    value: "<file[:m][:te=m][:unet=m][:lbw=w]>",
    multiple: true,
    help: "apply a LoRA unmerged (the base weights stay untouched) with its multiplier (default " +
      "1), text-encoder / U-Net multipliers and block weights (an A1111 preset such as OUTD, 17 " +
      "or 26 numbers, or in0=1,out3=0.5); repeatable",
  },
  "lora-mode": {
    type: "string",
    value: "<lowrank|copy>",
    help: "lowrank keeps each LoRA's factors beside the base weights (default); copy holds the " +
      "effective weights of the adapted layers (a merged model's speed, more GPU memory)",
  },
  "init-image": {
    type: "string",
    value: "<png|jpg>",
    help: "img2img: start from this image (its size is the default --width and --height)",
  },
  strength: {
    type: "string",
    value: "<0..1>",
    help: "img2img denoising strength: 0 returns the image, 1 ignores it (default 0.75)",
  },
  mask: {
    type: "string",
    value: "<png|jpg>",
    help: "inpainting: white repaints, black keeps; the init image's size (needs --init-image)",
  },
  "clip-skip": {
    type: "string",
    value: "<n>",
    help: "use the text encoder's hidden state n layers from the end, 1 to its layers " +
      "(default 1: the last; 2 is A1111's and kohya's common setting)",
  },
  "original-config": {
    type: "string",
    value: "<yaml>",
    help: "the LDM config of a single-file checkpoint (default: the .yaml beside it, if any); " +
      "values the tensors determine must agree with it",
  },
  "batch-size": {
    type: "string",
    value: "<n>",
    help: "images sampled together in one batch, 1 to 64 (default 1); image k uses seed + k " +
      "as in AUTOMATIC1111, and is the same image at any batch size",
  },
  "n-iter": {
    type: "string",
    value: "<n>",
    help: "batches, 1 to 100 (default 1); with more than one image each is written as " +
      "<out>-00000.png, ... and --out holds their grid",
  },
  "from-image": {
    type: "string",
    value: "<png|jpg>",
    help: "re-run the settings an image carries (A1111 parameters, as this command writes " +
      "them); options given here override them",
  },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies OptionTable;

/** Help text of `sample`. */
export const SAMPLE_HELP: string =
  `Usage: deno run -A mod.ts sample [--model <folder|file>] --prompt <text> [options]

Generates an image from a prompt with a Stable Diffusion 1.x checkpoint; without --model, with
the bundled mini model (e.g. --prompt "two small red circles on a blue background").

Options:
${formatOptions(SAMPLE_OPTIONS)}`;

/** Every `--sampler` value: diffusers-style names, ComfyUI's names, A1111's labels. */
const SAMPLER_CHOICES: readonly string[] = [
  ...SAMPLER_NAMES,
  ...K_SAMPLER_NAMES.filter((n) => !(SAMPLER_NAMES as readonly string[]).includes(n)),
  ...A1111_SAMPLER_LABELS.flatMap((l) => [l, `${l} Karras`, `${l} Exponential`]),
];

/** The scheduler options with an LDM config's schedule and prediction type on top. */
function withLdmSchedule(o: SamplerOptions, ldm: LdmSettings | undefined): SamplerOptions {
  if (!ldm) return o;
  const hasSchedule = Object.keys(ldm.schedule).length > 0;
  return {
    ...o,
    ...(hasSchedule ? { schedule: createSchedule(ldm.schedule) } : {}),
    ...(ldm.prediction ? { prediction: ldm.prediction } : {}),
  };
}

/** The image side limit of `--width` / `--height`. */
const MAX_SIDE = 8192;

function progress(t0: number): (step: number, total: number) => void {
  let last = t0;
  return (step, total) => {
    const now = performance.now();
    if (now - last <= 100 && step !== total) return;
    last = now;
    const rate = step / ((now - t0) / 1000);
    const w = 30, done = Math.round((step / total) * w);
    const bar = "#".repeat(done) + "-".repeat(w - done);
    const line = `\r[${bar}] ${step}/${total} ${rate.toFixed(2)} it/s`;
    Deno.stderr.writeSync(new TextEncoder().encode(line));
  };
}

/**
 * Runs `sample` with its arguments (after the command name); returns the exit code. Bad
 * arguments throw `UsageError`, failures other typed errors (the CLI entry prints them).
 *
 * @example
 * ```ts ignore
 * import { sampleCommand } from "./sample.ts";
 * await sampleCommand(["--model", "sd15", "--prompt", "a cat", "--out", "cat.png"]);
 * ```
 */
export async function sampleCommand(args: string[]): Promise<number> {
  const parsed = parseOptions(args, SAMPLE_OPTIONS, "sample");
  if (parsed.help) {
    console.log(SAMPLE_HELP);
    return 0;
  }
  const fromPath = parsed["from-image"];
  const values = fromPath === undefined ? parsed : {
    ...valuesFromInfotext(
      await readInfotext(await readImageFile(fromPath, "from-image"), quote(fromPath)),
    ),
    ...Object.fromEntries(Object.entries(parsed).filter(([, v]) => v !== undefined)),
  } as typeof parsed;
  const initPath = values["init-image"], maskPath = values.mask;
  const initImage = initPath === undefined
    ? undefined
    : await decodeImage(await readImageFile(initPath, "init-image"), quote(initPath));
  const mask = maskPath === undefined
    ? undefined
    : await decodeImage(await readImageFile(maskPath, "mask"), quote(maskPath));
  if (mask && !initImage) throw new UsageError("--mask needs --init-image (the image to inpaint)");
  if (values.strength !== undefined && !initImage) {
    throw new UsageError("--strength needs --init-image (the image to start from)");
  }
  const strength = numberOption("strength", values.strength, 0.75, { min: 0, max: 1 });
  if (values.prompt === undefined) throw new UsageError("sample needs --prompt");
  const modelPath = values.model ?? bundledModelDir();
  // a single file's LDM YAML (--original-config or the .yaml beside it), checked against it
  const ldm = await readOriginalConfig(modelPath, values["original-config"]);
  const scheduler = withLdmSchedule(await readSchedulerOptions(modelPath), ldm);
  const trainSteps = scheduler.schedule?.trainSteps ?? 1000;
  const steps = intOption("steps", values.steps, 25, {
    min: 1,
    max: trainSteps,
    why: `the model's ${trainSteps} training timesteps`,
  });
  const seed = intOption("seed", values.seed, 0, {
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    why: "the noise generator's 53-bit seed",
  });
  const side = { min: 8, max: MAX_SIDE, why: "the VAE's 8x latent factor up to 8192" };
  // default: the init image's size, else the model's own (sample size x VAE factor, after loading)
  const widthOption = values.width === undefined
    ? initImage?.width
    : intOption("width", values.width, 0, side);
  const heightOption = values.height === undefined
    ? initImage?.height
    : intOption("height", values.height, 0, side);
  const cfg = numberOption("cfg", values.cfg, 7, { min: 0, max: 100 });
  const sampler = choiceOption("sampler", values.sampler, "dpmpp_2m_karras", SAMPLER_CHOICES);
  const sigmaSchedule = values.schedule === undefined
    ? undefined
    : choiceOption("schedule", values.schedule, "normal", SIGMA_SCHEDULES);
  const batchSize = intOption("batch-size", values["batch-size"], 1, {
    min: 1,
    max: 64,
    why: "64 images per batch",
  });
  const count = batchSize *
    intOption("n-iter", values["n-iter"], 1, { min: 1, max: 100, why: "100 batches" });
  if (seed + count - 1 > Number.MAX_SAFE_INTEGER) {
    throw new UsageError(
      `--seed ${seed} plus ${count - 1} images passes 2^53 - 1; use a lower seed`,
    );
  }
  const clipSkip = intOption("clip-skip", values["clip-skip"], ldm?.clipSkip ?? 1, {
    min: 1,
    max: 12,
    why: "SD 1.x's 12 text-encoder layers",
  });
  const out = values.out ?? "out.png";
  const loras = (values.lora ?? []).map(parseLoraSpec);
  const loraMode = choiceOption("lora-mode", values["lora-mode"], "lowrank", LORA_MODES);
  const format = imageFormat(out);
  await checkOutputPath(out);

  await getDevice();
  const models = await loadStableDiffusion(
    modelPath,
    {
      ...(values.tokenizer ? { tokenizer: values.tokenizer } : {}),
      ...(ldm ? { unet: ldm.unet, vae: ldm.vae } : {}),
    },
  );
  const own = models.unet.config.sampleSize * 2 ** (models.vae.config.blockOutChannels.length - 1);
  const width = widthOption ?? own, height = heightOption ?? own;
  try {
    using _lora = await applyLoraSpecs(models, loras, { mode: loraMode });
    using _adabn = await applyAdabnSpecs(
      models.unet,
      loras,
      (w) => console.error(`warning: ${escapeControls(w)}`),
    );
    const model = modelPath.replace(/\/+$/u, "").split("/").pop()!.replace(/\.[^.]*$/u, "");
    const images: RgbImage[] = [];
    const withInfo = async (image: RgbImage, seedK: number) => {
      const info = formatInfotext(
        values.prompt!,
        values.negative ?? "",
        infotextFields({
          steps,
          sampler,
          schedule: sigmaSchedule,
          cfg,
          seed: seedK,
          width,
          height,
          model,
          clipSkip,
          strength: initImage ? strength : undefined,
        }),
      );
      const bytes = await encodeImage(image, format);
      return format === "png"
        ? pngWithText(bytes, "parameters", info)
        : jpegWithUserComment(bytes, info);
    };
    // A1111's seeds: image k of the run uses seed + k; a batch samples its images together
    for (let k0 = 0; k0 < count; k0 += batchSize) {
      const batch = await textToImages(
        models,
        Array.from(
          { length: batchSize },
          (_, j) => ({ prompt: values.prompt!, seed: seed + k0 + j }),
        ),
        {
          negative: values.negative ?? "",
          steps,
          cfg,
          sampler,
          ...(sigmaSchedule ? { sigmaSchedule } : {}),
          clipSkip,
          width,
          height,
          scheduler,
          onStep: progress(performance.now()),
          onWarning: (w) => k0 === 0 && console.error(`warning: ${escapeControls(w)}`),
          ...(initImage ? { initImage, strength } : {}),
          ...(mask ? { mask } : {}),
        },
      );
      Deno.stderr.writeSync(new TextEncoder().encode("\n"));
      for (const [j, image] of batch.entries()) {
        const k = k0 + j;
        if (count > 1) {
          await writeFileAtomic(numberedPath(out, k), await withInfo(image, seed + k));
        }
        images.push(image);
      }
    }
    await writeFileAtomic(out, await withInfo(count > 1 ? imageGrid(images) : images[0]!, seed));
  } finally {
    for (const m of [models.unet, models.vae, models.textEncoder]) m.dispose();
  }
  console.log(
    count > 1
      ? `wrote ${count} images ${escapeControls(numberedPath(out, 0))}.. and the grid ` +
        `${escapeControls(out)} (${width}x${height}, seeds ${seed}..${seed + count - 1})`
      : `wrote ${escapeControls(out)} (${width}x${height}, seed ${seed})`,
  );
  return 0;
}
