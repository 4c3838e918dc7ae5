/**
 * LoRA entries to safetensors tensors, in the kohya SD 1.x form (what kohya, A1111, ComfyUI and
 * diffusers all read), the diffusers-safe subset of it, or the PEFT / diffusers form. Portable:
 * the file itself is written by `write_fs.ts`.
 *
 * @module
 */
import type { SafetensorsInput } from "../../nn/safetensors.ts";
import type { HostTensor, LoraEntry } from "../file_types.ts";
import { LoraFileError } from "./errors.ts";
import { kohyaName } from "./names.ts";
import { PEFT_METADATA_KEY, peftAdapterMetadata } from "./peft_metadata.ts";

/** Which file form to write. */
export type LoraWriteFormat = "kohya" | "diffusers-safe" | "peft";

/** Options of {@link loraTensors}. */
export interface LoraTensorsOptions {
  /** File form (default "kohya"). */
  format?: LoraWriteFormat;
  /** Stored dtype of every tensor, alphas included (default "F32"). */
  dtype?: "F32" | "F16";
}

/** Tensors to write, extra metadata the form needs, and the entries left out. */
export interface LoraTensors {
  /** Tensor name -> data. */
  tensors: Record<string, SafetensorsInput>;
  /** Metadata the form itself needs (PEFT: `lora_adapter_metadata`). */
  metadata: Record<string, string>;
  /** Entries the form cannot hold, as `component:path (reason)`; only "diffusers-safe" drops. */
  dropped: string[];
}

const KOHYA_SUFFIX: Record<string, string> = { down: "lora_down.weight", up: "lora_up.weight" };

/**
 * Lays out LoRA entries as safetensors tensors. kohya: `<kohya name>.lora_down.weight`,
 * `.lora_up.weight`, a 0-dim `.alpha` (the rank when the entry had none, so the scale stays 1),
 * `.w_norm` and `.b_norm` always together (A1111 needs both), LyCORIS tensors under their own
 * names. "diffusers-safe" keeps only plain LoRA / LoCon entries (diffusers rejects norm deltas,
 * `lora_mid`, LoHa, LoKr, full deltas and DoRA) and lists the rest in `dropped`. PEFT:
 * `unet.<path>.lora_A.weight` / `lora_B.weight` with alphas in `lora_adapter_metadata`.
 *
 * @example
 * ```ts
 * import { loraTensors } from "./write.ts";
 * const { tensors } = loraTensors([{
 *   component: "unet", path: "mid_block.attentions.0.proj_in", kind: "lora", alpha: 1, tensors: {},
 *   down: { shape: [1, 8], data: new Float32Array(8) }, up: { shape: [8, 1], data: new Float32Array(8) },
 * }], { dtype: "F16" });
 * console.log(Object.keys(tensors)); // [...lora_down.weight, ...lora_up.weight, ...alpha]
 * ```
 */
export function loraTensors(
  entries: readonly LoraEntry[],
  options: LoraTensorsOptions = {},
): LoraTensors {
  const format = options.format ?? "kohya";
  const dtype = options.dtype ?? "F32";
  const tensors: Record<string, SafetensorsInput> = {};
  const dropped: string[] = [];
  const put = (key: string, t: HostTensor): void => {
    if (key in tensors) {
      throw new LoraFileError(`Two entries write the tensor "${key}"; pass each module once`);
    }
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) {
      throw new LoraFileError(
        `Tensor "${key}" has ${t.data.length} values but shape [${t.shape.join(", ")}] holds ` +
          `${n}; nothing was written, so fix the entry`,
      );
    }
    tensors[key] = { data: t.data, shape: t.shape, dtype };
  };
  const seen = new Set<string>();
  for (const e of entries) {
    const id = `${e.component}:${e.path}`;
    if (seen.has(id)) {
      throw new LoraFileError(`Module "${e.path}" (${e.component}) appears twice; pass it once`);
    }
    seen.add(id);
    if (format === "peft" || format === "diffusers-safe") {
      const why = unsupported(e, format);
      if (why) {
        if (format === "peft") {
          throw new LoraFileError(
            `Module "${e.path}" is ${why}, which the PEFT form cannot hold; write the kohya ` +
              "form instead",
          );
        }
        dropped.push(`${id} (${why})`);
        continue;
      }
    }
    if (format === "peft") {
      put(`${e.component}.${e.path}.lora_A.weight`, e.down!);
      put(`${e.component}.${e.path}.lora_B.weight`, e.up!);
      continue;
    }
    const name = kohyaName(e.component, e.path);
    if (e.kind === "norm") {
      const c = (e.wNorm ?? e.bNorm)?.data.length ?? 0;
      const zeros = { shape: [c], data: new Float32Array(c) };
      put(`${name}.w_norm`, e.wNorm ?? zeros);
      put(`${name}.b_norm`, e.bNorm ?? zeros);
      continue;
    }
    if (e.down) put(`${name}.${KOHYA_SUFFIX["down"]}`, e.down);
    if (e.up) put(`${name}.${KOHYA_SUFFIX["up"]}`, e.up);
    if (e.mid) put(`${name}.lora_mid.weight`, e.mid);
    for (const [s, t] of Object.entries(e.tensors)) put(`${name}.${s}`, t);
    const rank = e.down?.shape[0] ??
      (e.tensors["hada_w1_b"] ?? e.tensors["lokr_w1_b"] ?? e.tensors["lokr_w2_b"])?.shape[0];
    const alpha = e.alpha ?? rank;
    if (alpha !== undefined && e.kind !== "full") {
      put(`${name}.alpha`, { shape: [], data: new Float32Array([alpha]) });
    }
  }
  const metadata: Record<string, string> = {};
  if (format === "peft") metadata[PEFT_METADATA_KEY] = peftAdapterMetadata(entries);
  return { tensors, metadata, dropped };
}

function unsupported(e: LoraEntry, format: LoraWriteFormat): string | undefined {
  if (e.kind === "norm") return "a norm delta (w_norm / b_norm)";
  if (e.kind !== "lora") return `a ${e.kind} delta`;
  if (e.mid) return "a Tucker LoCon (lora_mid)";
  if (e.tensors["dora_scale"]) return "a DoRA module (dora_scale)";
  if (format === "peft" && Object.keys(e.tensors).length > 0) {
    return `a module with extra tensors (${Object.keys(e.tensors).join(", ")})`;
  }
  return undefined;
}
