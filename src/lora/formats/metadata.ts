/**
 * kohya's LoRA metadata: the `ss_*` training keys (sd-scripts `train_network.py`,
 * `NetworkTrainer.train`: every value passed through Python's `str()`), the `modelspec.*` keys
 * (`library/sai_model_spec.py::build_metadata`) and the two hashes A1111 reads
 * (`train_util.precalculate_safetensors_hashes`: `sshs_model_hash` = sha256 of the data section,
 * `sshs_legacy_hash` = first 8 hex of sha256 of 64 KiB at 1 MiB of the file serialised with only
 * the `ss_*` metadata). Portable: hashing uses Web Crypto.
 *
 * @module
 */
import { planSafetensors, type SafetensorsInput } from "../../nn/safetensors.ts";

/** Training facts for {@link kohyaMetadata}; anything left out is written as Python's `None`. */
export interface KohyaMetadataOptions {
  /** `ss_network_module` (default `networks.lora`; `lycoris.kohya` for LyCORIS modules). */
  networkModule?: string;
  /** `ss_network_dim`: the linear rank, or `"Dynamic"` after a dynamic resize. */
  networkDim?: number | "Dynamic";
  /** `ss_network_alpha`. */
  networkAlpha?: number;
  /** `ss_network_args` (JSON): conv and block dims, dropouts; omitted when absent. */
  networkArgs?: Record<string, unknown>;
  /** `ss_base_model_version` (default `sd_v1`). */
  baseModelVersion?: string;
  /** `ss_output_name` (A1111 shows it as the LoRA's alias) and the default title. */
  outputName?: string;
  /** `ss_sd_model_name`: the base checkpoint's file name. */
  sdModelName?: string;
  /** Training resolution `[width, height]` (default 512 x 512). */
  resolution?: [number, number];
  /** `ss_clip_skip`. */
  clipSkip?: number;
  /** `ss_steps`. */
  steps?: number;
  /** `ss_epoch`. */
  epoch?: number;
  /** `ss_seed`. */
  seed?: number;
  /** `ss_num_train_images` (repeats included). */
  numTrainImages?: number;
  /** `ss_tag_frequency`: folder -> tag -> count. */
  tagFrequency?: Record<string, Record<string, number>>;
  /** `ss_dataset_dirs`: folder -> repeats and image count. */
  datasetDirs?: Record<string, { n_repeats: number; img_count: number }>;
  /** `ss_training_comment`. */
  trainingComment?: string;
  /** `modelspec.title` (default the output name). */
  title?: string;
  /** `modelspec.date` and the title fallback (default now). */
  date?: Date;
  /** `modelspec.prediction_type` (default `epsilon`). */
  predictionType?: "epsilon" | "v";
  /** Further string keys, written as given (e.g. `ss_learning_rate`). */
  extra?: Record<string, string>;
}

// Python's str() of a number: floats keep a ".0" when whole.
function pyFloat(n: number): string {
  if (Number.isInteger(n)) return n.toFixed(1);
  return String(n);
}

function pyStr(v: number | string | undefined, float = false): string {
  if (v === undefined) return "None";
  if (typeof v === "number") return float ? pyFloat(v) : String(v);
  return v;
}

/** `json.dumps` with Python's default separators (", " and ": "). */
export function pythonJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`;
  if (typeof value === "object") {
    const parts = Object.entries(value as Record<string, unknown>).map(([k, v]) =>
      `${JSON.stringify(k)}: ${pythonJson(v)}`
    );
    return `{${parts.join(", ")}}`;
  }
  return JSON.stringify(value);
}

// ISO-8601 local date without fraction, as datetime.fromtimestamp(int(ts)).isoformat().
function isoLocal(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:` +
    `${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * kohya's metadata for an SD 1.x LoRA, every value a string as kohya writes it. The hashes are
 * added by {@link withHashes} once the tensors are known.
 *
 * @example
 * ```ts
 * import { kohyaMetadata } from "./metadata.ts";
 * const m = kohyaMetadata({ networkDim: 16, networkAlpha: 8, outputName: "cat", steps: 100 });
 * console.log(m.ss_network_alpha, m["modelspec.architecture"]); // "8.0" "stable-diffusion-v1/lora"
 * ```
 */
export function kohyaMetadata(options: KohyaMetadataOptions = {}): Record<string, string> {
  const [w, h] = options.resolution ?? [512, 512];
  const date = options.date ?? new Date();
  const seconds = Math.floor(date.getTime() / 1000);
  const m: Record<string, string> = {
    ss_network_module: options.networkModule ?? "networks.lora",
    ss_network_dim: pyStr(options.networkDim),
    ss_network_alpha: pyStr(options.networkAlpha, true),
    ss_base_model_version: options.baseModelVersion ?? "sd_v1",
    ss_v2: "False",
    ss_output_name: pyStr(options.outputName),
    ss_sd_model_name: pyStr(options.sdModelName),
    ss_resolution: `(${w}, ${h})`,
    ss_clip_skip: pyStr(options.clipSkip),
    ss_steps: pyStr(options.steps),
    ss_epoch: pyStr(options.epoch),
    ss_seed: pyStr(options.seed),
    ss_num_train_images: pyStr(options.numTrainImages),
    ss_tag_frequency: pythonJson(options.tagFrequency ?? {}),
    ss_dataset_dirs: pythonJson(options.datasetDirs ?? {}),
    ss_training_comment: pyStr(options.trainingComment),
  };
  if (options.networkArgs) m["ss_network_args"] = pythonJson(options.networkArgs);
  m["modelspec.sai_model_spec"] = "1.0.1";
  m["modelspec.architecture"] = "stable-diffusion-v1/lora";
  m["modelspec.implementation"] = "diffusers";
  m["modelspec.title"] = options.title ?? options.outputName ?? `LoRA@${seconds}`;
  m["modelspec.resolution"] = `${w}x${h}`;
  m["modelspec.date"] = isoLocal(new Date(seconds * 1000));
  m["modelspec.prediction_type"] = options.predictionType ?? "epsilon";
  if (options.clipSkip !== undefined) m["modelspec.encoder_layer"] = String(options.clipSkip);
  return { ...m, ...options.extra };
}

async function sha256(parts: Iterable<Uint8Array>): Promise<string> {
  const chunks = [...parts];
  const total = chunks.reduce((n, c) => n + c.byteLength, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * `metadata` plus kohya's `sshs_model_hash` (sha256 of the data section, which does not depend
 * on the metadata, so it is the hash of the file as written) and `sshs_legacy_hash`.
 */
export async function withHashes(
  tensors: Readonly<Record<string, SafetensorsInput>>,
  metadata: Readonly<Record<string, string>>,
): Promise<Record<string, string>> {
  const model = await sha256(planSafetensors(tensors).chunks());
  const ss = Object.fromEntries(Object.entries(metadata).filter(([k]) => k.startsWith("ss_")));
  const plan = planSafetensors(tensors, ss);
  const file = [plan.header, ...plan.chunks()];
  // 0x10000 bytes at 0x100000 of the ss_-only file (empty when the file is shorter).
  const start = 0x100000, end = start + 0x10000;
  const window: Uint8Array[] = [];
  let at = 0;
  for (const c of file) {
    const a = Math.max(start, at), b = Math.min(end, at + c.byteLength);
    if (a < b) window.push(c.subarray(a - at, b - at));
    at += c.byteLength;
  }
  const legacy = (await sha256(window)).slice(0, 8);
  return { ...metadata, sshs_model_hash: model, sshs_legacy_hash: legacy };
}
