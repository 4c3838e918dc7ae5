/**
 * AdaBN statistics inside a LoRA safetensors file, beside the kohya keys and under their own
 * prefix, so tools that read only `lora_unet_*` / `lora_te_*` keys skip them:
 *
 * - one band: `adabn.<module path>.running_mean` and `adabn.<module path>.running_var`;
 * - several bands: `adabn_band<k>.<module path>.running_mean` / `.running_var`, k = 0, 1, ...
 *
 * Each is an F32 tensor [C]; `running_var` is the population variance (what AdaBN normalizes
 * with). The `__metadata__` key `denoise_adabn` holds JSON: `format` (1), `bands` (the
 * boundaries), `mode`, `method`, `variance` ("population") and `counts` (module path -> values
 * per channel in each band). Portable: write the result with `writeSafetensors`.
 *
 * @module
 */
import type {
  SafetensorsInput,
  SafetensorsReader,
  SafetensorsTensorInfo,
} from "../nn/safetensors.ts";
import { AdabnError } from "./errors.ts";
import type { AdabnBandStatistics, AdabnSnapshot } from "./snapshot.ts";

/** The `__metadata__` key that says a file holds AdaBN statistics (JSON). */
export const ADABN_METADATA_KEY = "denoise_adabn";

/** Tensors and metadata to write. */
export interface AdabnFileParts {
  /** Tensor name -> data. */
  tensors: Record<string, SafetensorsInput>;
  /** `__metadata__` strings. */
  metadata: Record<string, string>;
}

interface AdabnMetadata {
  format: 1;
  bands: number[];
  mode: AdabnSnapshot["mode"];
  method: string | null;
  variance: "population";
  counts: Record<string, number[]>;
}

const STAT_SUFFIXES = ["running_mean", "running_var"] as const;

/** The key prefix of band `band` when a file holds `count` bands. */
export function adabnKeyPrefix(band: number, count: number): string {
  return count === 1 ? "adabn." : `adabn_band${band}.`;
}

/** Whether a tensor name is an AdaBN statistic (`adabn.` or `adabn_band<k>.`). */
export function isAdabnKey(key: string): boolean {
  return /^adabn(_band\d+)?\./.test(key);
}

/**
 * The statistics as safetensors tensors plus the `denoise_adabn` metadata entry.
 *
 * @example
 * ```ts
 * import { adabnTensors } from "./file.ts";
 * const stats = { mean: new Float32Array([0, 1]), variance: new Float32Array([1, 2]), count: 8 };
 * const { tensors } = adabnTensors({
 *   bands: [0, 1000], mode: "before", method: "exact", layers: [{ path: "conv_norm_out", bands: [stats] }],
 * });
 * console.log(Object.keys(tensors)); // ["adabn.conv_norm_out.running_mean", "adabn.conv_norm_out.running_var"]
 * ```
 */
export function adabnTensors(snapshot: AdabnSnapshot): AdabnFileParts {
  const count = snapshot.bands.length - 1;
  const tensors: Record<string, SafetensorsInput> = {};
  const counts: Record<string, number[]> = {};
  for (const layer of snapshot.layers) {
    if (layer.bands.length !== count) {
      throw new AdabnError(
        `Layer "${layer.path}" has ${layer.bands.length} bands of statistics but the bands ` +
          `[${snapshot.bands.join(", ")}] make ${count}; take the snapshot from one AdaBN`,
      );
    }
    layer.bands.forEach((s, b) => {
      const prefix = adabnKeyPrefix(b, count) + layer.path;
      tensors[`${prefix}.running_mean`] = { data: s.mean, shape: [s.mean.length], dtype: "F32" };
      tensors[`${prefix}.running_var`] = {
        data: s.variance,
        shape: [s.variance.length],
        dtype: "F32",
      };
    });
    counts[layer.path] = layer.bands.map((s) => s.count);
  }
  const meta: AdabnMetadata = {
    format: 1,
    bands: snapshot.bands,
    mode: snapshot.mode,
    method: snapshot.method,
    variance: "population",
    counts,
  };
  return { tensors, metadata: { [ADABN_METADATA_KEY]: JSON.stringify(meta) } };
}

/**
 * A LoRA's tensors and metadata (as the LoRA writer produces them) with the statistics added.
 * Every other tensor and metadata entry is passed through as given; statistics already there
 * (an earlier save) are replaced.
 *
 * @example
 * ```ts
 * import { serializeSafetensors } from "../nn/safetensors.ts";
 * import { withAdabnStatistics } from "./file.ts";
 * const stats = { mean: new Float32Array([0]), variance: new Float32Array([1]), count: 4 };
 * const parts = withAdabnStatistics(
 *   { "lora_unet_x.alpha": { data: new Float32Array([1]), shape: [] } },
 *   { ss_network_dim: "4" },
 *   { bands: [0, 1000], mode: "before", method: "exact", layers: [{ path: "bn", bands: [stats] }] },
 * );
 * console.log(serializeSafetensors(parts.tensors, parts.metadata).byteLength > 0); // true
 * ```
 */
export function withAdabnStatistics(
  tensors: Readonly<Record<string, SafetensorsInput>>,
  metadata: Readonly<Record<string, string>>,
  snapshot: AdabnSnapshot,
): AdabnFileParts {
  const added = adabnTensors(snapshot);
  const kept = Object.entries(tensors).filter(([k]) => !isAdabnKey(k));
  return {
    tensors: { ...Object.fromEntries(kept), ...added.tensors },
    metadata: { ...metadata, ...added.metadata },
  };
}

/**
 * Every tensor and metadata entry of an existing file (a LoRA), stored bytes kept exactly
 * (F32 and F16; other dtypes throw), with the statistics added: write the result with
 * `writeSafetensors` to add AdaBN to a saved LoRA.
 */
export async function fileWithAdabnStatistics(
  reader: SafetensorsReader,
  snapshot: AdabnSnapshot,
): Promise<AdabnFileParts> {
  const tensors: Record<string, SafetensorsInput> = {};
  for (const key of reader.keys) {
    if (isAdabnKey(key)) continue;
    const { dtype, shape } = reader.info(key);
    if (dtype !== "F32" && dtype !== "F16") {
      throw new AdabnError(
        `Tensor "${key}" in "${reader.name}" is ${dtype}, which cannot be copied unchanged; ` +
          "convert the file to F32 or F16 first",
      );
    }
    const raw = (await reader.readRaw(key)).slice();
    const data = dtype === "F32" ? new Float32Array(raw.buffer) : new Float16Array(raw.buffer);
    tensors[key] = { data, shape: [...shape], dtype };
  }
  return withAdabnStatistics(tensors, reader.metadata, snapshot);
}

function parseMetadata(text: string, file: string): AdabnMetadata {
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch {
    meta = null;
  }
  const m = meta as Partial<AdabnMetadata> | null;
  const ok = m !== null && typeof m === "object" && m.format === 1 &&
    Array.isArray(m.bands) && m.bands.length >= 2 && m.bands.every(Number.isFinite) &&
    typeof m.counts === "object" && m.counts !== null;
  if (!ok) {
    throw new AdabnError(
      `The "${ADABN_METADATA_KEY}" metadata of "${file}" is not AdaBN format 1 JSON; save the ` +
        "statistics again with this version",
    );
  }
  return m as AdabnMetadata;
}

/**
 * Reads the AdaBN statistics of a file, or null when it holds none. Throws {@link AdabnError}
 * when statistics are there but incomplete (a missing tensor, shape or count).
 *
 * @example
 * ```ts
 * import { SafetensorsReader, serializeSafetensors } from "../nn/safetensors.ts";
 * import { adabnTensors, readAdabnStatistics } from "./file.ts";
 * const stats = { mean: new Float32Array([0]), variance: new Float32Array([1]), count: 4 };
 * const parts = adabnTensors({ bands: [0, 1000], mode: "alone", method: "online", layers: [{ path: "bn", bands: [stats] }] });
 * using r = await SafetensorsReader.fromBytes(serializeSafetensors(parts.tensors, parts.metadata));
 * console.log((await readAdabnStatistics(r))?.layers[0]?.path); // "bn"
 * ```
 */
export async function readAdabnStatistics(
  reader: SafetensorsReader,
): Promise<AdabnSnapshot | null> {
  const text = reader.metadata[ADABN_METADATA_KEY];
  const keys = reader.keys.filter(isAdabnKey);
  if (text === undefined) {
    if (keys.length === 0) return null;
    throw new AdabnError(
      `"${reader.name}" holds AdaBN tensors (${keys[0]}, ...) but no "${ADABN_METADATA_KEY}" ` +
        "metadata; save the statistics again",
    );
  }
  const meta = parseMetadata(text, reader.name);
  const count = meta.bands.length - 1;
  const layers: AdabnSnapshot["layers"] = [];
  const used = new Set<string>();
  for (const [path, counts] of Object.entries(meta.counts)) {
    if (!Array.isArray(counts) || counts.length !== count) {
      throw new AdabnError(
        `The AdaBN counts of "${path}" in "${reader.name}" do not list ${count} bands; save ` +
          "the statistics again",
      );
    }
    const bands: AdabnBandStatistics[] = [];
    for (let b = 0; b < count; b++) {
      const [mean, variance] = await Promise.all(STAT_SUFFIXES.map(async (suffix) => {
        const key = `${adabnKeyPrefix(b, count)}${path}.${suffix}`;
        const info: SafetensorsTensorInfo | undefined = reader.header.tensors.get(key);
        if (!info || info.dtype !== "F32" || info.shape.length !== 1) {
          throw new AdabnError(
            `"${reader.name}" lacks the F32 vector "${key}" its AdaBN metadata lists; save the ` +
              "statistics again",
          );
        }
        used.add(key);
        return await reader.read(key);
      }));
      bands.push({ mean: mean!, variance: variance!, count: counts[b]! });
    }
    layers.push({ path, bands });
  }
  const extra = keys.filter((k) => !used.has(k));
  if (extra.length > 0) {
    throw new AdabnError(
      `"${reader.name}" holds AdaBN tensors its metadata does not list (${extra[0]}, ...); save ` +
        "the statistics again",
    );
  }
  return { bands: meta.bands, mode: meta.mode, method: meta.method, layers };
}
