/**
 * `mod.ts lora <plan|info|merge>`: print an adapter plan, describe a LoRA file, or merge LoRAs
 * into a full checkpoint in the base's layout.
 *
 * @module
 */
import { deviceInfo, getDevice } from "../ops/device.ts";
import { escapeControls, quote } from "../nn/_untrusted.ts";
import { type ClipTextConfig, clipTextConfig, clipTextConfigFromDiffusers } from "../nn/clip.ts";
import { type UNetConfig, unetConfig, unetConfigFromDiffusers } from "../nn/unet.ts";
import { inferClipTextConfig, inferUNetConfig } from "../nn/checkpoint_keys.ts";
import { SafetensorsFile } from "../nn/safetensors_fs.ts";
import { saveDiffusersFolderAtomic } from "../nn/diffusers_save_fs.ts";
import { loadStableDiffusion, type SaveModels, saveSingleFile } from "../nn/loaders_fs.ts";
import type { LoraEntry, LoraFileContents } from "../lora/file_types.ts";
import { makePlan, PLAN_PRESETS, type PlanOptions, type PlanPreset } from "../lora/plan.ts";
import { configShapes, type ModuleInfo, textEncoderTree, unetTree } from "../lora/tree.ts";
import { mergeLoras } from "../lora/merge.ts";
import { kohyaName } from "../lora/formats/names.ts";
import { entryRank } from "../lora/formats/delta.ts";
import { readLoraFile } from "../lora/formats/read_fs.ts";
import {
  choiceOption,
  formatOptions,
  intOption,
  numberOption,
  type OptionTable,
  parseOptions,
  UsageError,
} from "./_args.ts";
import { checkOutputPath, OutputError } from "./_output.ts";
import { parseLoraSpec, readLoraSources } from "./_lora_spec.ts";

const PLAN_OPTIONS = {
  model: {
    type: "string",
    value: "<path>",
    help: "diffusers folder or single-file checkpoint whose configs to plan for (default SD 1.5)",
  },
  rank: { type: "string", value: "<n>", help: "rank of Linear and 1x1 conv modules (default 4)" },
  alpha: { type: "string", value: "<a>", help: "their alpha (default 1)" },
  "conv-rank": {
    type: "string",
    value: "<n>",
    help: "rank of 3x3 convs; adds the ResNet and sampler modules (default none)",
  },
  "conv-alpha": { type: "string", value: "<a>", help: "alpha of 3x3 convs (default 1)" },
  "block-dims": { type: "string", value: "<25 ints>", help: "kohya's block_dims, comma-separated" },
  "block-alphas": { type: "string", value: "<25 numbers>", help: "kohya's block_alphas" },
  "conv-block-dims": { type: "string", value: "<25 ints>", help: "kohya's conv_block_dims" },
  "conv-block-alphas": { type: "string", value: "<25 numbers>", help: "kohya's conv_block_alphas" },
  blocks: {
    type: "string",
    value: "<name=rank,...>",
    help: "ranks of the paper's blocks in0.., mid, out0.. (0 removes a block)",
  },
  preset: { type: "string", value: "<name>", help: `${PLAN_PRESETS.join(", ")} (default all)` },
  "unet-only": { type: "boolean", help: "no text-encoder modules" },
  norms: { type: "boolean", help: "add norm adapters in the targeted blocks" },
  json: { type: "boolean", help: "print the plan as JSON" },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies OptionTable;

const INFO_OPTIONS = {
  model: {
    type: "string",
    value: "<path>",
    help: "model to match the file against (default SD 1.5's layout)",
  },
  lenient: { type: "boolean", help: "warn about unmatched keys instead of failing" },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies OptionTable;

const MERGE_OPTIONS = {
  model: {
    type: "string",
    value: "<path>",
    help: "the base: a diffusers folder or a single-file checkpoint (required)",
  },
  lora: {
    type: "string",
    value: "<file[:m][:te=m][:unet=m][:lbw=w]>",
    multiple: true,
    help: "a LoRA with its multiplier, text-encoder / U-Net multipliers and block weights " +
      "(A1111 presets such as OUTD, 17 or 26 numbers, or in0=1,out3=0.5); repeatable (required)",
  },
  out: {
    type: "string",
    value: "<path>",
    help: "the merged checkpoint: a file for a single-file base, a new folder for a diffusers " +
      "base (required)",
  },
  precision: {
    type: "string",
    value: "<fp16|fp32>",
    help: "weight precision written (default fp16 where the adapter has shader-f16, else fp32)",
  },
  tokenizer: { type: "string", value: "<dir>", help: "tokenizer folder for single-file bases" },
  lenient: { type: "boolean", help: "warn about unmatched LoRA keys instead of failing" },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies OptionTable;

/** Help text of `lora`. */
export const LORA_HELP: string = `Usage: deno run -A mod.ts lora <subcommand> [options]

Subcommands:
  plan     Print which modules get which adapter, rank and alpha
  info     Describe a LoRA file: family, architecture, modules per block, ranks, metadata
  merge    Merge LoRAs into a base checkpoint and write it in the base's layout
  resize   Change a LoRA's rank by SVD (see: lora resize --help)
  extract  Make a LoRA from the difference of two checkpoints (see: lora extract --help)
  convert  Rewrite a LoRA file in another family (see: lora convert --help)

plan options:
${formatOptions(PLAN_OPTIONS)}

info: deno run -A mod.ts lora info <file> [options]
${formatOptions(INFO_OPTIONS)}

merge options:
${formatOptions(MERGE_OPTIONS)}`;

/** The U-Net and text-encoder configs of a checkpoint, read without loading weights. */
async function modelConfigs(path: string): Promise<[UNetConfig, ClipTextConfig]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new UsageError(
      `Cannot open the model ${quote(path)} (${quote((e as Error).message)}); pass a diffusers ` +
        "folder or a .safetensors checkpoint",
    );
  }
  if (info.isDirectory) {
    const json = async (sub: string) => {
      try {
        return JSON.parse(await Deno.readTextFile(`${path}/${sub}/config.json`));
      } catch (e) {
        throw new UsageError(
          `Cannot read ${quote(`${path}/${sub}/config.json`)} (${quote((e as Error).message)})`,
        );
      }
    };
    return [
      unetConfigFromDiffusers(await json("unet")),
      clipTextConfigFromDiffusers(await json("text_encoder")),
    ];
  }
  using file = await SafetensorsFile.open(path);
  return [unetConfig(inferUNetConfig(file)), clipTextConfig(inferClipTextConfig(file))];
}

function intList(name: string, raw: string | undefined): number[] | undefined {
  if (raw === undefined) return undefined;
  return raw.split(",").map((v) => intOption(name, v.trim(), 0, { min: 0, max: 100000 }));
}

function numList(name: string, raw: string | undefined): number[] | undefined {
  if (raw === undefined) return undefined;
  return raw.split(",").map((v) => numberOption(name, v.trim(), 0, { min: 0, max: 1e6 }));
}

function blockRanks(raw: string | undefined): Record<string, number> | undefined {
  if (raw === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const part of raw.split(",")) {
    const [name, value] = part.split("=");
    if (!name || value === undefined) {
      throw new UsageError(
        `--blocks needs name=rank pairs such as in0=8,mid=0; got ${quote(part)}`,
      );
    }
    out[name.trim()] = intOption(`blocks ${name.trim()}`, value.trim(), 0, { min: 0, max: 100000 });
  }
  return out;
}

async function planCommand(args: string[]): Promise<number> {
  const v = parseOptions(args, PLAN_OPTIONS, "lora plan");
  if (v.help) {
    console.log(LORA_HELP);
    return 0;
  }
  const [unet, te] = v.model ? await modelConfigs(v.model) : [unetConfig(), clipTextConfig()];
  const opts: PlanOptions = {
    rank: intOption("rank", v.rank, 4, { min: 0, max: 100000 }),
    alpha: numberOption("alpha", v.alpha, 1, { min: 0, max: 1e6 }),
    preset: choiceOption<PlanPreset>("preset", v.preset, "all", PLAN_PRESETS),
    textEncoder: !v["unet-only"],
    norms: v.norms ?? false,
  };
  if (v["conv-rank"] !== undefined) {
    opts.convRank = intOption("conv-rank", v["conv-rank"], 0, { min: 0, max: 100000 });
  }
  if (v["conv-alpha"] !== undefined) {
    opts.convAlpha = numberOption("conv-alpha", v["conv-alpha"], 1, { min: 0, max: 1e6 });
  }
  const lists: [keyof PlanOptions, number[] | undefined][] = [
    ["blockDims", intList("block-dims", v["block-dims"])],
    ["blockAlphas", numList("block-alphas", v["block-alphas"])],
    ["convBlockDims", intList("conv-block-dims", v["conv-block-dims"])],
    ["convBlockAlphas", numList("conv-block-alphas", v["conv-block-alphas"])],
  ];
  for (const [k, list] of lists) if (list) (opts as Record<string, unknown>)[k] = list;
  const ranks = blockRanks(v.blocks);
  if (ranks) opts.blockRanks = ranks;
  const plan = makePlan(unet, te, opts);
  if (v.json) {
    console.log(JSON.stringify(
      plan.entries.map((e) => ({
        name: kohyaName(e.component, e.path),
        path: e.path,
        adapter: e.adapter,
        rank: e.rank,
        alpha: e.alpha,
        block: e.block,
        kohyaIndex: e.kohyaIndex,
        shape: e.shape,
      })),
      null,
      2,
    ));
    return 0;
  }
  for (const e of plan.entries) {
    const ra = e.adapter === "norm" ? "norm" : `${e.adapter} r=${e.rank} alpha=${e.alpha}`;
    console.log(
      `${kohyaName(e.component, e.path)}  ${ra}  ${
        e.block ?? (e.component === "unet" ? "-" : "te")
      }` +
        `  [${e.shape.join(", ")}]`,
    );
  }
  console.log(summary(plan.entries.map((e) => [e, e.adapter])));
  return 0;
}

function blockOf(m: Pick<ModuleInfo, "component" | "block">): string {
  return m.component === "text_encoder" ? "te" : m.block ?? "other";
}

function summary(items: [Pick<ModuleInfo, "component" | "block">, string][]): string {
  const per = new Map<string, number>();
  for (const [m] of items) per.set(blockOf(m), (per.get(blockOf(m)) ?? 0) + 1);
  const unet = items.filter(([m]) => m.component === "unet").length;
  return `${items.length} modules (U-Net ${unet}, text encoder ${
    items.length - unet
  }); per block: ` +
    [...per].map(([b, n]) => `${b} ${n}`).join(", ");
}

function counts(values: (string | number)[]): string {
  const c = new Map<string, number>();
  for (const v of values) c.set(String(v), (c.get(String(v)) ?? 0) + 1);
  return [...c].map(([v, n]) => `${v} (${n})`).join(", ");
}

const SUMMARY_KEYS = [
  "ss_output_name",
  "ss_network_module",
  "ss_network_dim",
  "ss_network_alpha",
  "ss_network_args",
  "ss_base_model_version",
  "ss_sd_model_name",
  "ss_resolution",
  "ss_steps",
  "ss_epoch",
  "ss_clip_skip",
  "sshs_model_hash",
  "modelspec.architecture",
  "modelspec.title",
];

async function infoCommand(args: string[]): Promise<number> {
  const file = args[0] && !args[0].startsWith("-") ? args[0] : undefined;
  const v = parseOptions(file ? args.slice(1) : args, INFO_OPTIONS, "lora info");
  if (v.help) {
    console.log(LORA_HELP);
    return 0;
  }
  if (!file) throw new UsageError("lora info needs a LoRA file: lora info <file>");
  const [unet, te] = v.model ? await modelConfigs(v.model) : [unetConfig(), clipTextConfig()];
  const lora = await readLoraFile(file, configShapes(unet, te), { lenient: v.lenient ?? false });
  const tree = new Map(
    [...unetTree(unet), ...textEncoderTree(te)].map((m) => [`${m.component}:${m.path}`, m]),
  );
  const infos = lora.entries.map((e) => tree.get(`${e.component}:${e.path}`)!);
  console.log(describe(file, lora, infos));
  return 0;
}

function describe(file: string, lora: LoraFileContents, infos: ModuleInfo[]): string {
  const md = lora.metadata;
  const ranks = lora.entries.map((e) => entryRank(e) ?? "-");
  const alphas = lora.entries.map((e) => e.alpha ?? "none (scale 1)");
  const lines = [
    `file: ${escapeControls(file)}`,
    `family: ${lora.family}`,
    `architecture: SD 1.x${
      md["ss_base_model_version"]
        ? ` (metadata: ${escapeControls(md["ss_base_model_version"])})`
        : ""
    }`,
    `modules: ${summary(infos.map((m) => [m, ""]))}`,
    `kinds: ${counts(lora.entries.map((e: LoraEntry) => e.kind))}`,
    `ranks: ${counts(ranks)}`,
    `alphas: ${counts(alphas)}`,
    `metadata: ${Object.keys(md).length} keys`,
  ];
  for (const k of SUMMARY_KEYS) {
    const value = md[k];
    if (value !== undefined) lines.push(`  ${k}: ${escapeControls(value.slice(0, 200))}`);
  }
  return lines.join("\n");
}

async function mergeCommand(args: string[]): Promise<number> {
  const v = parseOptions(args, MERGE_OPTIONS, "lora merge");
  if (v.help) {
    console.log(LORA_HELP);
    return 0;
  }
  if (!v.model || !v.lora?.length || !v.out) {
    throw new UsageError("lora merge needs --model, at least one --lora and --out");
  }
  const specs = v.lora.map(parseLoraSpec);
  const precision = v.precision === undefined
    ? undefined
    : choiceOption("precision", v.precision, "fp32", ["fp16", "fp32"] as const);
  const folder = (await Deno.stat(v.model).catch(() => null))?.isDirectory ?? false;
  const out = v.out.replace(/\/+$/, "");
  if (folder) {
    if (await Deno.stat(out).catch(() => null)) {
      throw new OutputError(
        `The output folder ${quote(out)} already exists; pass a new folder so nothing there is ` +
          "overwritten",
      );
    }
    await checkOutputPath(`${out}.probe`);
  } else await checkOutputPath(out);
  await getDevice();
  if (precision === "fp16" && !deviceInfo().f16) {
    throw new UsageError(
      "--precision fp16 needs an adapter with shader-f16 (on Linux: Mesa's Vulkan driver, " +
        "mesa-vulkan-drivers); use --precision fp32",
    );
  }
  const models = await loadStableDiffusion(v.model, {
    ...(v.tokenizer ? { tokenizer: v.tokenizer } : {}),
    ...(precision ? { weightDType: precision === "fp16" ? "f16" : "f32" } : {}),
  });
  try {
    const sources = await readLoraSources(models, specs, { lenient: v.lenient ?? false });
    const deltas = await mergeLoras(
      { unet: models.unet, textEncoder: models.textEncoder },
      sources,
    );
    const save: SaveModels = {
      unet: models.unet,
      vae: models.vae,
      textEncoder: models.textEncoder,
    };
    if (folder) {
      const tok = await readTokenizerFiles(v.model);
      if (tok) save.tokenizerFiles = tok;
      await saveDiffusersFolderAtomic(out, save);
    } else await saveSingleFile(out, save);
    console.log(
      `merged ${specs.length} LoRA file(s) into ${deltas.length} modules; wrote ${
        escapeControls(out)
      }`,
    );
  } finally {
    for (const m of [models.unet, models.vae, models.textEncoder]) m.dispose();
  }
  return 0;
}

async function readTokenizerFiles(
  model: string,
): Promise<{ vocab: string; merges: string } | null> {
  try {
    return {
      vocab: await Deno.readTextFile(`${model}/tokenizer/vocab.json`),
      merges: await Deno.readTextFile(`${model}/tokenizer/merges.txt`),
    };
  } catch {
    return null;
  }
}

const SUBCOMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  plan: planCommand,
  info: infoCommand,
  merge: mergeCommand,
  resize: async (args) => (await import("./lora_tools.ts")).resizeCommand(args),
  extract: async (args) => (await import("./lora_tools.ts")).extractCommand(args),
  convert: async (args) => (await import("./lora_tools.ts")).convertCommand(args),
};

/**
 * Runs `lora` with its arguments (after the command name); returns the exit code.
 *
 * @example
 * ```ts
 * import { loraCommand } from "./lora.ts";
 * await loraCommand(["plan", "--rank", "8", "--preset", "upper"]);
 * ```
 */
export async function loraCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(LORA_HELP);
    return sub === undefined ? 2 : 0;
  }
  const run = SUBCOMMANDS[sub];
  if (!run) {
    throw new UsageError(
      `lora has no subcommand ${quote(sub)}; use one of ${Object.keys(SUBCOMMANDS).join(", ")}`,
    );
  }
  return await run(rest);
}
