/**
 * Extracting a LoRA from two models by SVD of their weight differences, as kohya's
 * `networks/extract_lora_from_models.py`: per module `diff = tuned - base` (k x k convs
 * flattened to `[out, in*k*k]`), rank `min(rank, in, out)` (`convRank` for k x k convs, which
 * are only extracted when it is set), `up = U[:, :r] S[:r]`, `down = Vt[:r]`, both clamped to the
 * `clampQuantile` quantile of their values, alpha = rank; the text encoder is left out when no
 * weight moved by more than `minDiff`.
 *
 * @module
 */
import type { HostTensor, LoraComponent, LoraEntry } from "./file_types.ts";
import { LoraFileError } from "./formats/errors.ts";
import type { LoraModuleShape } from "./formats/model_shapes.ts";
import { topSvd } from "./svd_top.ts";

/** One module's weights in both models. */
export interface ExtractPair {
  /** Which model. */
  component: LoraComponent;
  /** Diffusers module path. */
  path: string;
  /** Base weight. */
  base: HostTensor;
  /** Tuned weight, same shape. */
  tuned: HostTensor;
}

/** Options of {@link extractEntries}. */
export interface ExtractOptions {
  /** Rank of linear and 1x1 modules. */
  rank: number;
  /** Rank of k x k convs; without it they are not extracted (kohya's rule). */
  convRank?: number;
  /** Quantile the factors are clamped to (default 0.99). */
  clampQuantile?: number;
  /** Text-encoder differences at most this large count as "unchanged" (default 0.01). */
  minDiff?: number;
}

/**
 * Whether kohya's LoRA network targets a module: Linear and 1x1 convs inside the transformers
 * and the text encoder's attention and MLP; with conv ranks also the ResNet, downsampler and
 * upsampler layers. Returns "conv" for k x k convs.
 */
export function kohyaTarget(m: LoraModuleShape, conv: boolean): "linear" | "conv" | undefined {
  if (m.kind === "norm") return undefined;
  const kxk = m.weight.length === 4 && m.weight.slice(2).some((d) => d !== 1);
  if (m.component === "text_encoder") {
    return /\.(self_attn|mlp)\./.test(m.path) && !kxk ? "linear" : undefined;
  }
  if (/\.attentions\.\d+\./.test(m.path)) return kxk ? undefined : "linear";
  if (conv && /\.(resnets\.\d+|downsamplers\.0|upsamplers\.0)\./.test(m.path)) {
    return kxk ? "conv" : "linear";
  }
  return undefined;
}

// torch.quantile with linear interpolation.
function quantile(values: Float64Array, q: number): number {
  const s = Float64Array.from(values).sort();
  const pos = q * (s.length - 1), lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/**
 * LoRA entries approximating `tuned - base` for each pair.
 *
 * @example
 * ```ts
 * import { extractEntries } from "./svd_extract.ts";
 * const base = { shape: [2, 2], data: new Float32Array([1, 0, 0, 1]) };
 * const tuned = { shape: [2, 2], data: new Float32Array([2, 0, 0, 1]) };
 * const { entries } = extractEntries([{ component: "unet", path: "a.to_q", base, tuned }], { rank: 1 });
 * console.log(entries[0]?.alpha); // 1
 * ```
 */
export function extractEntries(
  pairs: readonly ExtractPair[],
  options: ExtractOptions,
): { entries: LoraEntry[]; textEncoderSkipped: boolean } {
  for (const [name, v] of [["rank", options.rank], ["conv rank", options.convRank ?? 1]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new LoraFileError(`The ${name} must be a whole number of at least 1; got ${v}`);
    }
  }
  const q = options.clampQuantile ?? 0.99, minDiff = options.minDiff ?? 0.01;
  if (!(q > 0 && q <= 1)) {
    throw new LoraFileError(`The clamp quantile must be in (0, 1]; got ${q}`);
  }
  let teMax = 0;
  const diffs = pairs.map((p) => {
    if (p.base.data.length !== p.tuned.data.length) {
      throw new LoraFileError(
        `Module "${p.path}" has weight [${p.base.shape.join(", ")}] in the base model but ` +
          `[${p.tuned.shape.join(", ")}] in the tuned one; extract from two models of the same ` +
          "architecture",
      );
    }
    const d = new Float64Array(p.base.data.length);
    for (let i = 0; i < d.length; i++) d[i] = p.tuned.data[i]! - p.base.data[i]!;
    if (p.component === "text_encoder") {
      for (const v of d) teMax = Math.max(teMax, Math.abs(v));
    }
    return d;
  });
  const textEncoderSkipped = pairs.some((p) => p.component === "text_encoder") && teMax <= minDiff;
  const entries: LoraEntry[] = [];
  pairs.forEach((p, idx) => {
    if (p.component === "text_encoder" && textEncoderSkipped) return;
    const shape = p.base.shape;
    const kxk = shape.length === 4 && shape.slice(2).some((d) => d !== 1);
    if (kxk && options.convRank === undefined) return;
    const out = shape[0]!, inCh = shape[1]!, n = p.base.data.length / out;
    const rank = Math.min(kxk ? options.convRank! : options.rank, inCh, out);
    const f = topSvd(diffs[idx]!, out, n, rank);
    const up = new Float64Array(out * rank), down = new Float64Array(rank * n);
    for (let t = 0; t < rank; t++) {
      for (let i = 0; i < out; i++) up[i * rank + t] = f.u[i * f.k + t]! * f.s[t]!;
      for (let i = 0; i < n; i++) down[t * n + i] = f.vt[t * n + i]!;
    }
    const all = new Float64Array(up.length + down.length);
    all.set(up);
    all.set(down, up.length);
    const hi = quantile(all, q);
    const clamp = (v: number) => Math.min(hi, Math.max(-hi, v));
    const conv = shape.length === 4;
    entries.push({
      component: p.component,
      path: p.path,
      kind: "lora",
      alpha: rank,
      tensors: {},
      moduleShape: [...shape],
      down: {
        shape: conv ? [rank, inCh, ...shape.slice(2)] : [rank, n],
        data: Float32Array.from(down, clamp),
      },
      up: { shape: conv ? [out, rank, 1, 1] : [out, rank], data: Float32Array.from(up, clamp) },
    });
  });
  return { entries, textEncoderSkipped };
}
