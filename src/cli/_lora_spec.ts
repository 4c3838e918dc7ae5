/**
 * The `--lora` argument of `sample` and `lora merge`:
 * `file[:multiplier][:te=<m>][:unet=<m>][:lbw=<preset|17 or 26 numbers|in0=1,...>]`.
 *
 * @module
 */
import { quote } from "../nn/_untrusted.ts";
import type { UNet2DConditionModel } from "../nn/unet.ts";
import type { CLIPTextModel } from "../nn/clip.ts";
import { type BlockWeights, parseBlockWeights } from "../lora/block_weights.ts";
import type { LoraSource } from "../lora/compose.ts";
import { applyLoras, type ApplyLorasOptions } from "../lora/apply.ts";
import type { LoraNetwork } from "../lora/network.ts";
import { modelShapes } from "../lora/formats/model_shapes.ts";
import { readLoraFile } from "../lora/formats/read_fs.ts";
import { UsageError } from "./_args.ts";
import { SafetensorsFile } from "../nn/safetensors_fs.ts";
import { BatchNorm2d } from "../nn/layers/batch_norm.ts";
import { AdaBN } from "../adabn/adabn.ts";
import { readAdabnStatistics } from "../adabn/file.ts";

/** A parsed `--lora` argument. */
export interface LoraSpec {
  /** The LoRA file. */
  path: string;
  /** Multiplier of every module (default 1). */
  multiplier: number;
  /** Multiplier of the U-Net modules, when given. */
  unetMultiplier?: number;
  /** Multiplier of the text-encoder modules, when given. */
  textEncoderMultiplier?: number;
  /** Per-block weights, when given. */
  blockWeights?: BlockWeights;
}

const DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/;

function decimal(text: string, what: string, spec: string): number {
  if (!DECIMAL.test(text)) {
    throw new UsageError(
      `--lora ${quote(spec)}: ${what} must be a decimal number such as 0.8, got ${quote(text)}`,
    );
  }
  return Number(text);
}

/**
 * Parses one `--lora` value.
 *
 * @example
 * ```ts
 * import { parseLoraSpec } from "./_lora_spec.ts";
 * console.log(parseLoraSpec("style.safetensors:0.8:lbw=OUTD").multiplier); // 0.8
 * ```
 */
export function parseLoraSpec(spec: string): LoraSpec {
  const parts = spec.split(":");
  const path = parts[0] ?? "";
  if (path === "") throw new UsageError(`--lora ${quote(spec)} names no file`);
  const out: LoraSpec = { path, multiplier: 1 };
  let sawMultiplier = false;
  for (const part of parts.slice(1)) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? "" : part.slice(0, eq), value = part.slice(eq + 1);
    if (key === "lbw") {
      try {
        out.blockWeights = parseBlockWeights(value);
      } catch (e) {
        throw new UsageError(`--lora ${quote(spec)}: ${(e as Error).message}`);
      }
    } else if (key === "te") out.textEncoderMultiplier = decimal(value, "te", spec);
    else if (key === "unet") out.unetMultiplier = decimal(value, "unet", spec);
    else if (eq < 0 && !sawMultiplier) {
      out.multiplier = decimal(part, "the multiplier", spec);
      sawMultiplier = true;
    } else {
      throw new UsageError(
        `--lora ${quote(spec)}: cannot read ${quote(part)}; write ` +
          "file[:multiplier][:te=<m>][:unet=<m>][:lbw=<weights>]",
      );
    }
  }
  return out;
}

/**
 * Reads each `--lora` file against the models (every key must match a module) and turns it into
 * a composition source with its multipliers and block weights.
 */
export async function readLoraSources(
  models: { unet: UNet2DConditionModel; textEncoder: CLIPTextModel },
  specs: readonly LoraSpec[],
  options: { lenient?: boolean } = {},
): Promise<LoraSource[]> {
  const shapes = modelShapes({ unet: models.unet, textEncoder: models.textEncoder });
  const sources: LoraSource[] = [];
  for (const s of specs) {
    const lora = await readLoraFile(s.path, shapes, { lenient: options.lenient ?? false });
    const src: LoraSource = { entries: lora.entries, multiplier: s.multiplier };
    if (s.unetMultiplier !== undefined) src.unetMultiplier = s.unetMultiplier;
    if (s.textEncoderMultiplier !== undefined) src.textEncoderMultiplier = s.textEncoderMultiplier;
    if (s.blockWeights) src.blockWeights = s.blockWeights;
    sources.push(src);
  }
  return sources;
}

/**
 * Applies `--lora` files to loaded models unmerged; disposing the result (a `using` binding)
 * detaches them again. With no files it returns null.
 */
export async function applyLoraSpecs(
  models: { unet: UNet2DConditionModel; textEncoder: CLIPTextModel },
  specs: readonly LoraSpec[],
  options: ApplyLorasOptions = {},
): Promise<LoraNetwork | null> {
  if (specs.length === 0) return null;
  return await applyLoras(
    { unet: models.unet, textEncoder: models.textEncoder },
    await readLoraSources(models, specs),
    options,
  );
}

/** The values of `--lora-mode`. */
export const LORA_MODES: readonly ("lowrank" | "copy")[] = ["lowrank", "copy"];

/**
 * Loads the AdaBN statistics a `--lora` file carries into the U-Net (attached with the file's
 * bands; dispose the result, a `using` binding, to detach). Null when no file carries any; when
 * the model has no batch norm they are ignored with one warning. With several such files the
 * last one wins.
 */
export async function applyAdabnSpecs(
  unet: UNet2DConditionModel,
  specs: readonly LoraSpec[],
  warn: (text: string) => void,
): Promise<AdaBN | null> {
  let found = null;
  for (const s of specs) {
    using file = await SafetensorsFile.open(s.path);
    found = (await readAdabnStatistics(file)) ?? found;
  }
  if (!found) return null;
  if (!unet.namedModules().some(([, m]) => m instanceof BatchNorm2d)) {
    warn("The LoRA carries AdaBN statistics but this U-Net has no batch norm; ignoring them");
    return null;
  }
  const adabn = AdaBN.attach(unet, { bands: found.bands });
  try {
    adabn.load(found);
  } catch (e) {
    adabn.dispose();
    throw e;
  }
  return adabn;
}
