/**
 * `mod.ts pretrain`: pretrains the mini SD from scratch on the procedural world (the VAE, then
 * the text encoder with the U-Net) and writes an f16 diffusers folder.
 *
 * @module
 */
import { join } from "node:path";
import { ProceduralWorld } from "../eval/world.ts";
import { ALL_FILLS, ALL_SHAPES } from "../eval/shapes.ts";
import { writeCaptionTokenizer } from "../eval/caption_tokenizer_fs.ts";
import { loadTokenizer } from "../nn/tokenizer_fs.ts";
import { pretrain } from "../train/pretrain_fs.ts";
import {
  choiceOption,
  formatOptions,
  intOption,
  numberOption,
  type OptionTable,
  parseOptions,
  UsageError,
} from "./_args.ts";

/** The options of `pretrain`. */
export const PRETRAIN_OPTIONS = {
  stage: {
    type: "string",
    value: "<vae|unet|all|decoder>",
    help: "stages to run (default all); decoder (with --init) fine-tunes only the VAE's decoder, " +
      "keeping the latents the U-Net learned",
  },
  steps: {
    type: "string",
    value: "<n>",
    help:
      "optimizer steps of the U-Net stage, and of the VAE stage unless --vae-steps (default 2000)",
  },
  "vae-steps": { type: "string", value: "<n>", help: "optimizer steps of the VAE stage" },
  "batch-size": { type: "string", value: "<n>", help: "images per step (default 16)" },
  out: {
    type: "string",
    value: "<dir>",
    help: "run folder; the model goes to <dir>/model (default runs/mini_sd)",
  },
  seed: {
    type: "string",
    value: "<n>",
    help: "seed of weights, noise and the image stream (default 1)",
  },
  resume: { type: "string", value: "<dir>", help: "continue from a state folder (<out>/state)" },
  init: {
    type: "string",
    value: "<dir>",
    help:
      "start from a model folder this command wrote (fresh optimizer and schedule; with --stage unet its VAE stays as it is)",
  },
  "save-every-n-steps": {
    type: "string",
    value: "<n>",
    help: "save the resumable state every n steps (default 0: at the end of each stage)",
  },
  size: { type: "string", value: "<mini|tiny>", help: "model size (default mini; tiny for tests)" },
  norm: {
    type: "string",
    value: "<group|batch>",
    help: "the U-Net's ResNet and output norms (default group); batch with --init <group-norm " +
      "model> --stage unet converts that model's U-Net and keeps its VAE and text encoder",
  },
  "vae-channels": {
    type: "string",
    value: "<c1,c2,...>",
    help: "the VAE's block widths instead of the size's (mini: 16,32,32), e.g. 32,64,64",
  },
  "vae-lr": { type: "string", value: "<x>", help: "VAE learning rate (default 0.001)" },
  "unet-lr": {
    type: "string",
    value: "<x>",
    help: "text encoder + U-Net learning rate (default 0.0003)",
  },
  "min-snr-gamma": {
    type: "string",
    value: "<x>",
    help:
      "Min-SNR loss weighting of the U-Net stage, as kohya's --min_snr_gamma (default 5; 0 off)",
  },
  ema: {
    type: "boolean",
    help: "sample and write the U-Net stage's text encoder and U-Net as an exponential moving " +
      "average of their weights (decay 0.9999, diffusers' --use_ema default)",
  },
  "ema-decay": {
    type: "string",
    value: "<x>",
    help: "the EMA's decay, a decimal in (0, 1) (implies --ema)",
  },
  "log-every": { type: "string", value: "<n>", help: "steps between progress lines (default 10)" },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies OptionTable;

/** Help text of `pretrain`. */
export const PRETRAIN_HELP: string = `Usage: deno run -A mod.ts pretrain [options]

Pretrains the bundled mini Stable Diffusion (SD 1.x classes, 32x32 images, 8x8 latents) from
scratch on the procedural world: the VAE (L1 + L2 reconstruction, KL weight 1e-6), on every shape
and fill, the concepts' too, as an image codec; then the text encoder with the U-Net (epsilon
target, SD 1.x schedule, Min-SNR-5 weighting, 10% empty captions for classifier-free guidance),
which never see the concepts. Each stage warms up, then decays its learning rate on a cosine.
Writes <out>/model, an f16 diffusers folder whose weights record the command, steps, seeds, wall
time and every earlier piece (--init); <out>/logs holds the loss curves and HTML reports (the U-Net
stage's with samples), <out>/state the state --resume continues from exactly.

--norm batch builds the U-Net with BatchNorm2d (batch statistics in training, running statistics
in sampling, set by an exact AdaBN estimate after the last step). From a group-norm model
(--init models/mini_sd --stage unet --norm batch) each GroupNorm's weight and bias become the
BatchNorm2d's, the running statistics are estimated before the first step, and the VAE and text
encoder stay frozen, so the variant shares them with its base bit for bit.

--ema keeps an exponential moving average of the U-Net stage's weights, updated after every step
by diffusers' EMAModel rule (decay 0 at the first update, then min(decay, (1 + s) / (10 + s))
with s updates done); the report's samples and <out>/model use the average, and the state folder
keeps it for --resume, which needs the same --ema-decay.

Options:
${formatOptions(PRETRAIN_OPTIONS)}`;

/** Block widths from `32,64,64`: two to four whole numbers from 4 to 1024, each a multiple of 4. */
function channelList(name: string, text: string): number[] {
  const list = text.split(",").map((p) => intOption(name, p.trim(), 0, { min: 4, max: 1024 }));
  if (list.length < 2 || list.length > 4 || list.some((c) => c % 4 !== 0)) {
    throw new UsageError(
      `--${name} takes 2 to 4 comma-separated widths, multiples of 4 from 4 to 1024 ` +
        `(e.g. 32,64,64), got ${JSON.stringify(text)}`,
    );
  }
  return list;
}

/** The EMA decay of `--ema` / `--ema-decay <x>`: 0 (off) without either, 0.9999 for `--ema`. */
function emaDecayOption(on: boolean | undefined, raw: string | undefined): number {
  if (raw === undefined) return on ? 0.9999 : 0;
  const d = numberOption("ema-decay", raw, 0.9999, { min: 0, max: 1 });
  if (d === 0 || d === 1) {
    throw new UsageError(
      `--ema-decay must be a decimal number between 0 and 1, both excluded, such as 0.9999; ` +
        `got ${JSON.stringify(raw)}`,
    );
  }
  return d;
}

/**
 * Runs `pretrain` with its arguments; returns the exit code.
 *
 * @example
 * ```ts ignore
 * await pretrainCommand(["--steps", "2000", "--out", "runs/mini_sd"]);
 * ```
 */
export async function pretrainCommand(args: string[]): Promise<number> {
  const v = parseOptions(args, PRETRAIN_OPTIONS, "pretrain");
  if (v.help) {
    console.log(PRETRAIN_HELP);
    return 0;
  }
  const big = { min: 1, max: 1e9 };
  const steps = intOption("steps", v.steps, 2000, big);
  const out = v.out ?? "runs/mini_sd";
  const seed = intOption("seed", v.seed, 1, { min: 0, max: 2 ** 31 });
  const emaDecay = emaDecayOption(v.ema, v["ema-decay"]);
  const tokDir = join(out, "tokenizer");
  await writeCaptionTokenizer(tokDir);
  const tokenizerFiles: Record<string, string> = {};
  for (
    const name of ["vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"]
  ) {
    tokenizerFiles[name] = await Deno.readTextFile(join(tokDir, name));
  }
  const stream = (world: ProceduralWorld) => (start: number, count: number) => {
    const items = world.items(start, count);
    return { rgb: items.map((i) => i.rgb), captions: items.map((i) => i.caption) };
  };
  const r = await pretrain(
    stream(new ProceduralWorld({ seed })),
    {
      vaeSource: stream(new ProceduralWorld({ seed, shapes: ALL_SHAPES, fills: ALL_FILLS })),
      stage: choiceOption("stage", v.stage, "all", ["vae", "unet", "all", "decoder"] as const),
      steps,
      vaeSteps: intOption("vae-steps", v["vae-steps"], steps, big),
      batchSize: intOption("batch-size", v["batch-size"], 16, { min: 1, max: 4096 }),
      out,
      seed,
      ...(v.resume !== undefined ? { resume: v.resume } : {}),
      ...(v.init !== undefined ? { init: v.init } : {}),
      saveEveryNSteps: intOption("save-every-n-steps", v["save-every-n-steps"], 0, {
        min: 0,
        max: 1e9,
      }),
      size: choiceOption("size", v.size, "mini", ["mini", "tiny"] as const),
      norm: choiceOption("norm", v.norm, "group", ["group", "batch"] as const),
      ...(v["vae-channels"] !== undefined
        ? { vaeChannels: channelList("vae-channels", v["vae-channels"]) }
        : {}),
      vaeLr: numberOption("vae-lr", v["vae-lr"], 1e-3, { min: 0, max: 1 }),
      unetLr: numberOption("unet-lr", v["unet-lr"], 3e-4, { min: 0, max: 1 }),
      minSnrGamma: numberOption("min-snr-gamma", v["min-snr-gamma"], 5, { min: 0, max: 1000 }),
      ...(emaDecay > 0 ? { emaDecay } : {}),
      logEvery: intOption("log-every", v["log-every"], 10, big),
      tokenizer: await loadTokenizer(tokDir),
      // captions of a stream the training never reads, drawn into the U-Net stage's report
      samplePrompts: new ProceduralWorld({ seed: 99 }).items(0, 8).map((i) => i.caption),
      tokenizerFiles,
      command: ["deno run -A mod.ts pretrain", ...args].join(" "),
    },
  );
  for (const l of r.losses) {
    console.log(`${l.stage} stage: loss ${l.first.toFixed(4)} -> ${l.last.toFixed(4)}`);
  }
  if (r.model) console.log(`wrote ${r.model} (${r.wallSeconds.toFixed(1)} s)`);
  return 0;
}
