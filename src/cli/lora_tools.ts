/**
 * `mod.ts lora resize | extract | convert`: LoRA file tools on the CPU. Each handler takes the
 * arguments after its sub-command and returns the exit code; errors are thrown (typed, with
 * sentence-case messages) for the dispatcher to report. Outputs are checked before any work and
 * written atomically.
 *
 * @module
 */
import { SafetensorsFile } from "../nn/safetensors_fs.ts";
import { inferUNetConfig, TEXT_ENCODER_PREFIX, UNET_PREFIX } from "../nn/checkpoint_keys.ts";
import { unetConfig } from "../nn/unet.ts";
import type { LoraEntry, LoraFileContents } from "../lora/file_types.ts";
import { fileModelShapes } from "../lora/formats/file_shapes.ts";
import { readLora } from "../lora/formats/read.ts";
import { writeLoraFile } from "../lora/formats/write_fs.ts";
import { LoraFileError } from "../lora/formats/errors.ts";
import type { LoraModuleShape } from "../lora/formats/model_shapes.ts";
import { type DynamicMethod, resizeEntries } from "../lora/svd_resize.ts";
import { extractEntries, type ExtractPair, kohyaTarget } from "../lora/svd_extract.ts";
import { unetKeyFromOriginal } from "../lora/svd_extract_keys.ts";
import {
  choiceOption,
  formatOptions,
  intOption,
  numberOption,
  type OptionTable,
  parseOptions,
  UsageError,
} from "./_args.ts";
import { checkOutputPath } from "./_output.ts";

const PRECISION = {
  type: "string",
  value: "<p>",
  help: "float or fp16: the dtype of every tensor written (default float)",
} as const;
const HELP_OPTION = { type: "boolean", short: "h", help: "show this help" } as const;
const MAX_RANK = { min: 1, max: 100_000 };

async function readFileLora(path: string, lenient: boolean): Promise<LoraFileContents> {
  using file = await SafetensorsFile.open(path);
  return await readLora(file, fileModelShapes(file), {
    lenient,
    onWarning: (m) => console.error(`warning: ${m}`),
  });
}

function need(value: string | undefined, option: string, command: string): string {
  if (value === undefined) throw new UsageError(`${command} needs --${option}`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// resize

/** The options of `lora resize`. */
export const RESIZE_OPTIONS = {
  lora: { type: "string", value: "<file>", help: "the LoRA to resize (required)" },
  out: { type: "string", value: "<file>", help: "where to write the result (required)" },
  rank: {
    type: "string",
    value: "<n>",
    help: "new rank of linear and 1x1 modules; with --dynamic, the most a module keeps " +
      "(default there: its old rank)",
  },
  "conv-rank": { type: "string", value: "<n>", help: "new rank of k x k convs (default --rank)" },
  dynamic: {
    type: "string",
    value: "<m:v>",
    help: "pick ranks by singular values as kohya's resize_lora: sv_fro:<0..1>, " +
      "sv_cumulative:<0..1> or sv_ratio:<1 or more>",
  },
  "save-precision": PRECISION,
  lenient: { type: "boolean", help: "skip keys that match no module, with a warning" },
  help: HELP_OPTION,
} as const satisfies OptionTable;

/** Help text of `lora resize`. */
export const RESIZE_HELP: string =
  `Usage: deno run -A mod.ts lora resize --lora in.safetensors (--rank N | --dynamic sv_fro:0.9) --out out.safetensors

Resizes a LoRA's modules by SVD (kohya's resize_lora): down = Vt[:r], up = U[:, :r] S[:r],
alpha = scale * r. LoHa, LoKr, Tucker, DoRA, full and norm modules are copied unchanged.

Options:
${formatOptions(RESIZE_OPTIONS)}`;

function parseDynamic(raw: string): { method: DynamicMethod; param: number } {
  const [method, value] = raw.split(":");
  const m = choiceOption("dynamic", method, "sv_fro", ["sv_fro", "sv_cumulative", "sv_ratio"]);
  const param = numberOption(
    "dynamic",
    value ?? "",
    0,
    m === "sv_ratio" ? { min: 1, max: 1e9 } : { min: 0, max: 1 },
  );
  return { method: m, param };
}

/** Runs `lora resize`; returns the exit code. */
export async function resizeCommand(args: string[]): Promise<number> {
  const o = parseOptions(args, RESIZE_OPTIONS, "lora resize");
  if (o.help) {
    console.log(RESIZE_HELP);
    return 0;
  }
  const input = need(o.lora, "lora", "lora resize"), out = need(o.out, "out", "lora resize");
  if (o.rank === undefined && o.dynamic === undefined) {
    throw new UsageError("lora resize needs --rank or --dynamic");
  }
  const dynamic = o.dynamic === undefined ? undefined : parseDynamic(o.dynamic);
  const rank = intOption("rank", o.rank, Number.MAX_SAFE_INTEGER, MAX_RANK);
  const convRank = intOption("conv-rank", o["conv-rank"], rank, MAX_RANK);
  const dtype = choiceOption("save-precision", o["save-precision"], "float", ["float", "fp16"]);
  await checkOutputPath(out);
  const lora = await readFileLora(input, o.lenient ?? false);
  const { entries, report, unchanged } = resizeEntries(lora.entries, {
    rank,
    convRank,
    ...(dynamic ? { dynamic } : {}),
  });
  const oldDim = Math.max(0, ...report.map((r) => r.oldRank));
  const comment = lora.metadata["ss_training_comment"] ?? "";
  const meta = { ...lora.metadata };
  if (dynamic) {
    meta["ss_training_comment"] =
      `Dynamic resize with ${dynamic.method}: ${dynamic.param} from ${oldDim}; ${comment}`;
    meta["ss_network_dim"] = "Dynamic";
    meta["ss_network_alpha"] = "Dynamic";
  } else {
    const conv = convRank === rank ? "" : ` (conv: ${convRank})`;
    meta["ss_training_comment"] =
      `dimension is resized from ${oldDim} to ${rank}${conv}; ${comment}`;
    meta["ss_network_dim"] = String(rank);
    const alpha = report.find((r) => r.newRank === rank)?.newAlpha;
    if (alpha !== undefined) meta["ss_network_alpha"] = String(alpha);
  }
  await writeLoraFile(out, entries, {
    format: lora.family === "peft" ? "peft" : "kohya",
    dtype: dtype === "fp16" ? "F16" : "F32",
    rawMetadata: meta,
  });
  const fro = report.reduce((a, r) => a + r.froRetained, 0) / (report.length || 1);
  console.log(
    `resized ${report.length} module(s)${unchanged.length ? `, copied ${unchanged.length}` : ""}` +
      `; mean Frobenius norm kept ${(fro * 100).toFixed(1)}%; wrote ${out}`,
  );
  return 0;
}

// ---------------------------------------------------------------------------------------------
// convert

/** The options of `lora convert`. */
export const CONVERT_OPTIONS = {
  lora: { type: "string", value: "<file>", help: "the LoRA to convert (required)" },
  to: {
    type: "string",
    value: "<form>",
    help: "kohya, peft, or diffusers-safe (kohya without what diffusers rejects; required)",
  },
  out: { type: "string", value: "<file>", help: "where to write the result (required)" },
  "save-precision": PRECISION,
  lenient: { type: "boolean", help: "skip keys that match no module, with a warning" },
  help: HELP_OPTION,
} as const satisfies OptionTable;

/** Help text of `lora convert`. */
export const CONVERT_HELP: string =
  `Usage: deno run -A mod.ts lora convert --lora in.safetensors --to kohya|peft|diffusers-safe --out out.safetensors

Rewrites a LoRA in another family. kohya files from any family (LDM-style names become
diffusers-style); PEFT holds plain LoRA / LoCon modules only; diffusers-safe drops norm deltas,
Tucker, LoHa, LoKr, full and DoRA modules and lists them.

Options:
${formatOptions(CONVERT_OPTIONS)}`;

/** Runs `lora convert`; returns the exit code. */
export async function convertCommand(args: string[]): Promise<number> {
  const o = parseOptions(args, CONVERT_OPTIONS, "lora convert");
  if (o.help) {
    console.log(CONVERT_HELP);
    return 0;
  }
  const input = need(o.lora, "lora", "lora convert"), out = need(o.out, "out", "lora convert");
  const to = choiceOption("to", need(o.to, "to", "lora convert"), "kohya", [
    "kohya",
    "peft",
    "diffusers-safe",
  ]);
  const dtype = choiceOption("save-precision", o["save-precision"], "float", ["float", "fp16"]);
  await checkOutputPath(out);
  const lora = await readFileLora(input, o.lenient ?? false);
  const keep = to === "peft" || lora.family === "peft" ? {} : { rawMetadata: lora.metadata };
  const { dropped } = await writeLoraFile(out, lora.entries, {
    format: to,
    dtype: dtype === "fp16" ? "F16" : "F32",
    ...keep,
  });
  for (const d of dropped) console.error(`dropped ${d}`);
  console.log(`converted ${lora.entries.length - dropped.length} module(s) to ${to}; wrote ${out}`);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// extract

/** The options of `lora extract`. */
export const EXTRACT_OPTIONS = {
  base: {
    type: "string",
    value: "<path>",
    help: "the base model: diffusers folder or single file",
  },
  tuned: { type: "string", value: "<path>", help: "the fine-tuned model, same architecture" },
  rank: { type: "string", value: "<n>", help: "rank of linear and 1x1 modules (required)" },
  "conv-rank": {
    type: "string",
    value: "<n>",
    help: "rank of 3x3 convs; without it the ResNet and sampler layers are not extracted",
  },
  "clamp-quantile": {
    type: "string",
    value: "<q>",
    help: "clamp the factors to this quantile of their values, 0 to 1 (default 0.99)",
  },
  "min-diff": {
    type: "string",
    value: "<d>",
    help: "leave out the text encoder when no weight moved more than this (default 0.01)",
  },
  out: { type: "string", value: "<file>", help: "where to write the LoRA (required)" },
  "save-precision": PRECISION,
  help: HELP_OPTION,
} as const satisfies OptionTable;

/** Help text of `lora extract`. */
export const EXTRACT_HELP: string =
  `Usage: deno run -A mod.ts lora extract --base a --tuned b --rank 16 --out lora.safetensors

Extracts a LoRA from the weight differences of two models by SVD (kohya's
extract_lora_from_models), on the CPU.

Options:
${formatOptions(EXTRACT_OPTIONS)}`;

interface Weight {
  module: LoraModuleShape;
  file: SafetensorsFile;
  key: string;
}

async function firstExisting(paths: string[]): Promise<string | undefined> {
  for (const p of paths) {
    try {
      if ((await Deno.stat(p)).isFile) return p;
    } catch { /* try the next */ }
  }
  return undefined;
}

function moduleOf(
  component: "unet" | "text_encoder",
  key: string,
  shape: readonly number[],
): LoraModuleShape | undefined {
  if (!key.endsWith(".weight") || (shape.length !== 2 && shape.length !== 4)) return undefined;
  const path = key.slice(0, -".weight".length);
  return {
    component,
    path,
    kind: shape.length === 4 ? "conv" : "linear",
    weight: [...shape],
    hasBias: true,
  };
}

async function modelWeights(
  path: string,
): Promise<{ weights: Map<string, Weight>; files: SafetensorsFile[] }> {
  const weights = new Map<string, Weight>(), files: SafetensorsFile[] = [];
  const add = (
    file: SafetensorsFile,
    component: "unet" | "text_encoder",
    key: string,
    name: string,
  ) => {
    const m = moduleOf(component, name, file.info(key).shape);
    if (m) weights.set(`${component}:${m.path}`, { module: m, file, key });
  };
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch {
    throw new LoraFileError(
      `Cannot find the model "${path}"; pass a diffusers folder or a .safetensors file`,
    );
  }
  if (st.isDirectory) {
    const unet = await firstExisting([
      `${path}/unet/diffusion_pytorch_model.safetensors`,
      `${path}/unet/diffusion_pytorch_model.fp16.safetensors`,
    ]);
    if (!unet) {
      throw new LoraFileError(
        `"${path}" has no unet/diffusion_pytorch_model.safetensors; pass a diffusers folder or a single file`,
      );
    }
    const te = await firstExisting([
      `${path}/text_encoder/model.safetensors`,
      `${path}/text_encoder/model.fp16.safetensors`,
    ]);
    const u = await SafetensorsFile.open(unet);
    files.push(u);
    for (const k of u.keys) add(u, "unet", k, k);
    if (te) {
      const t = await SafetensorsFile.open(te);
      files.push(t);
      for (const k of t.keys) {
        add(t, "text_encoder", k, k.startsWith("text_model.") ? k : `text_model.${k}`);
      }
    }
    return { weights, files };
  }
  const f = await SafetensorsFile.open(path);
  files.push(f);
  const config = unetConfig(inferUNetConfig(f));
  for (const k of f.keys) {
    if (k.startsWith(UNET_PREFIX)) {
      const d = unetKeyFromOriginal(k.slice(UNET_PREFIX.length), config);
      if (d) add(f, "unet", k, d);
    } else if (k.startsWith(TEXT_ENCODER_PREFIX)) {
      const rest = k.slice(TEXT_ENCODER_PREFIX.length);
      add(f, "text_encoder", k, rest.startsWith("text_model.") ? rest : `text_model.${rest}`);
    }
  }
  return { weights, files };
}

/** Runs `lora extract`; returns the exit code. */
export async function extractCommand(args: string[]): Promise<number> {
  const o = parseOptions(args, EXTRACT_OPTIONS, "lora extract");
  if (o.help) {
    console.log(EXTRACT_HELP);
    return 0;
  }
  const basePath = need(o.base, "base", "lora extract");
  const tunedPath = need(o.tuned, "tuned", "lora extract");
  const out = need(o.out, "out", "lora extract");
  const rank = intOption("rank", need(o.rank, "rank", "lora extract"), 0, MAX_RANK);
  const convRank = o["conv-rank"] === undefined
    ? undefined
    : intOption("conv-rank", o["conv-rank"], 0, MAX_RANK);
  const clampQuantile = numberOption("clamp-quantile", o["clamp-quantile"], 0.99, {
    min: 0,
    max: 1,
  });
  const minDiff = numberOption("min-diff", o["min-diff"], 0.01, { min: 0, max: 1e9 });
  const dtype = choiceOption("save-precision", o["save-precision"], "float", ["float", "fp16"]);
  await checkOutputPath(out);
  const base = await modelWeights(basePath), tuned = await modelWeights(tunedPath);
  try {
    const targets = [...base.weights.values()].filter((w) =>
      kohyaTarget(w.module, convRank !== undefined)
    );
    const missing = targets.filter((w) =>
      !tuned.weights.has(`${w.module.component}:${w.module.path}`)
    );
    if (targets.length === 0 || missing.length > 0) {
      throw new LoraFileError(
        targets.length === 0
          ? `"${basePath}" has no modules a LoRA targets; pass a Stable Diffusion 1.x model`
          : `"${tunedPath}" lacks ${missing.length} module(s) of the base, e.g. ` +
            `"${missing[0]!.module.path}"; extract from two models of the same architecture`,
      );
    }
    const pair = async (w: Weight): Promise<ExtractPair> => {
      const t = tuned.weights.get(`${w.module.component}:${w.module.path}`)!;
      return {
        component: w.module.component,
        path: w.module.path,
        base: { shape: [...w.module.weight], data: await w.file.read(w.key) },
        tuned: { shape: [...t.module.weight], data: await t.file.read(t.key) },
      };
    };
    const options = {
      rank,
      clampQuantile,
      minDiff,
      ...(convRank === undefined ? {} : { convRank }),
    };
    // The text encoder is decided as a whole (min diff); U-Net modules one at a time.
    const te = targets.filter((w) => w.module.component === "text_encoder");
    const teResult = extractEntries(await Promise.all(te.map(pair)), options);
    const entries: LoraEntry[] = [...teResult.entries];
    for (const w of targets.filter((w) => w.module.component === "unet")) {
      entries.push(...extractEntries([await pair(w)], options).entries);
    }
    if (teResult.textEncoderSkipped) {
      console.error("the text encoders are the same: extracted the U-Net only");
    }
    await writeLoraFile(out, entries, {
      dtype: dtype === "fp16" ? "F16" : "F32",
      metadata: {
        networkDim: rank,
        networkAlpha: rank,
        ...(convRank === undefined
          ? {}
          : { networkArgs: { conv_dim: String(convRank), conv_alpha: `${convRank}.0` } }),
        sdModelName: basePath.split("/").pop() ?? basePath,
      },
    });
    console.log(`extracted ${entries.length} module(s) at rank ${rank}; wrote ${out}`);
    return 0;
  } finally {
    for (const f of [...base.files, ...tuned.files]) f.close();
  }
}
