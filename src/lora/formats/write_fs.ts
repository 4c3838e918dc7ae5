/**
 * Writing LoRA files to disk atomically (a temporary file, then a rename; nothing is left
 * half-written and an existing file is untouched on failure).
 *
 * @module
 */
import { writeSafetensors } from "../../nn/safetensors_fs.ts";
import { SafetensorsError } from "../../nn/errors.ts";
import type { LoraEntry } from "../file_types.ts";
import { LoraFileError } from "./errors.ts";
import { kohyaMetadata, type KohyaMetadataOptions, withHashes } from "./metadata.ts";
import { loraTensors, type LoraTensorsOptions } from "./write.ts";
import { PEFT_METADATA_KEY } from "./peft_metadata.ts";

/** Options of {@link writeLoraFile}. */
export interface WriteLoraOptions extends LoraTensorsOptions {
  /** kohya metadata facts (kohya and diffusers-safe forms). */
  metadata?: KohyaMetadataOptions;
  /**
   * A finished metadata map used instead of `metadata` (e.g. a read file's, kept across resize
   * or convert); the kohya forms still get fresh hashes.
   */
  rawMetadata?: Record<string, string>;
}

/**
 * Writes entries as a LoRA file at `path` and returns the entries the form dropped. The folder
 * must exist; the error says so otherwise and nothing is written.
 *
 * @example
 * ```ts
 * import { writeLoraFile } from "./write_fs.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeLoraFile(path, [{
 *   component: "unet", path: "mid_block.attentions.0.proj_in", kind: "lora", alpha: 1, tensors: {},
 *   down: { shape: [1, 8], data: new Float32Array(8) }, up: { shape: [8, 1], data: new Float32Array(8) },
 * }], { metadata: { networkDim: 1, networkAlpha: 1 } });
 * ```
 */
export async function writeLoraFile(
  path: string,
  entries: readonly LoraEntry[],
  options: WriteLoraOptions = {},
): Promise<{ dropped: string[] }> {
  const { tensors, metadata, dropped } = loraTensors(entries, options);
  let meta: Record<string, string> = metadata;
  if (options.format !== "peft") {
    const lycoris = options.format !== "diffusers-safe" &&
      entries.some((e) =>
        e.kind !== "lora" || e.mid !== undefined || Object.keys(e.tensors).length > 0
      );
    const base = options.rawMetadata ?? kohyaMetadata({
      ...(lycoris ? { networkModule: "lycoris.kohya" } : {}),
      ...options.metadata,
    });
    const fresh = Object.fromEntries(
      Object.entries(base).filter(([k]) => k !== "sshs_model_hash" && k !== "sshs_legacy_hash"),
    );
    meta = await withHashes(tensors, fresh);
  } else if (options.rawMetadata) {
    const { [PEFT_METADATA_KEY]: _old, ...rest } = options.rawMetadata;
    meta = { ...rest, ...metadata };
  }
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const dir = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  try {
    const st = await Deno.stat(dir);
    if (!st.isDirectory) throw new Error("not a folder");
  } catch {
    throw new LoraFileError(
      `Cannot write "${path}": the folder "${dir}" does not exist; create it first or pick ` +
        "another output path",
    );
  }
  try {
    await writeSafetensors(path, tensors, meta);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new LoraFileError(e.message);
    throw e;
  }
  return { dropped };
}
