/**
 * The weight delta of one LoRA entry on the CPU, exactly as the upstream loaders define it, so
 * every form of the same delta (kohya, LDM names, PEFT, LoHa, LoKr, Tucker, full) merges to the
 * same weights. Sources: sd-scripts `networks/lora.py` (`LoRAModule`, scale = alpha / rank,
 * missing alpha = scale 1), LyCORIS `functional/loha.py`, `functional/lokr.py`,
 * `functional/general.py::rebuild_tucker`, `modules/full.py`, `modules/norms.py`, and
 * A1111 / ComfyUI for DoRA (`weight_decompose`: delta = multiplier * (merged - W)).
 *
 * @module
 */
import type { HostTensor, LoraEntry } from "../file_types.ts";
import { LoraFileError } from "./errors.ts";

/** The weight (and bias) delta of an entry. */
export interface EntryDelta {
  /** Delta of the module's weight, in the module's weight shape. */
  weight?: HostTensor;
  /** Delta of the module's bias (full `diff_b`, norm `b_norm`). */
  bias?: HostTensor;
}

/** Options of {@link entryDelta}. */
export interface EntryDeltaOptions {
  /** Multiplier (strength), default 1. */
  multiplier?: number;
  /** The base weight, required for DoRA entries (`dora_scale`). */
  base?: HostTensor;
}

const F32_EPS = 1.1920928955078125e-7;

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function need(entry: LoraEntry, name: string): HostTensor {
  const t = name === "down"
    ? entry.down
    : name === "up"
    ? entry.up
    : name === "mid"
    ? entry.mid
    : entry.tensors[name];
  if (!t) {
    throw new LoraFileError(
      `LoRA entry "${entry.path}" (${entry.kind}) lacks its "${name}" tensor; the file is ` +
        "incomplete, so export it again",
    );
  }
  return t;
}

// c[m, n] = sum_k a[m, k] b[k, n]; a is [m, k] (or transposed [k, m] when aT), b is [k, n].
function matmul(a: HostTensor, b: HostTensor, m: number, k: number, n: number, aT = false) {
  const out = new Float64Array(m * n);
  const A = a.data, B = b.data;
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = aT ? A[p * m + i]! : A[i * k + p]!;
      if (av === 0) continue;
      const row = p * n, o = i * n;
      for (let j = 0; j < n; j++) out[o + j]! += av * B[row + j]!;
    }
  }
  return out;
}

// Tucker rebuild (LyCORIS rebuild_tucker): out[p, q, s] = sum_ij t[i, j, s] wa[i, p] wb[j, q],
// with t [r1, r2, S], wa [r1, P], wb [r2, Q] -> [P, Q, S].
function tucker(t: HostTensor, wa: HostTensor, wb: HostTensor): Float64Array {
  const [r1, r2] = t.shape as [number, number];
  const S = numel(t.shape.slice(2));
  const P = wa.shape[1]!, Q = wb.shape[1]!;
  // u[i, q, s] = sum_j t[i, j, s] wb[j, q]
  const u = new Float64Array(r1 * Q * S);
  for (let i = 0; i < r1; i++) {
    for (let j = 0; j < r2; j++) {
      for (let q = 0; q < Q; q++) {
        const w = wb.data[j * Q + q]!;
        if (w === 0) continue;
        for (let s = 0; s < S; s++) u[(i * Q + q) * S + s]! += t.data[(i * r2 + j) * S + s]! * w;
      }
    }
  }
  const out = new Float64Array(P * Q * S);
  for (let i = 0; i < r1; i++) {
    for (let p = 0; p < P; p++) {
      const w = wa.data[i * P + p]!;
      if (w === 0) continue;
      const o = p * Q * S, src = i * Q * S;
      for (let x = 0; x < Q * S; x++) out[o + x]! += w * u[src + x]!;
    }
  }
  return out;
}

function transposed(t: HostTensor, rows: number, cols: number): HostTensor {
  const d = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) d[j * rows + i] = t.data[i * cols + j]!;
  }
  return { shape: [cols, rows], data: d };
}

/** The entry's rank: the size the alpha divides (undefined when alpha does not apply). */
export function entryRank(entry: LoraEntry): number | undefined {
  switch (entry.kind) {
    case "lora":
      return entry.down?.shape[0];
    case "loha":
      return entry.tensors["hada_w1_b"]?.shape[0];
    case "lokr":
      return (entry.tensors["lokr_w1_b"] ?? entry.tensors["lokr_w2_b"])?.shape[0];
    default:
      return undefined;
  }
}

/** alpha / rank, or 1 when the file had no alpha (kohya, A1111, ComfyUI and PEFT agree). */
export function entryScale(entry: LoraEntry): number {
  const r = entryRank(entry);
  return entry.alpha === undefined || r === undefined || r === 0 ? 1 : entry.alpha / r;
}

// The delta with scale 1 as [out, inner] in f64, inner = product of the module's other dims.
function rawDelta(entry: LoraEntry, shape: readonly number[]): Float64Array {
  const out = shape[0]!, inner = numel(shape.slice(1));
  switch (entry.kind) {
    case "lora": {
      const down = need(entry, "down"), up = need(entry, "up");
      const r = down.shape[0]!;
      if (entry.mid) {
        // Tucker LoCon: wa = up viewed [out, r] transposed, wb = down viewed [r, in].
        return tucker(entry.mid, transposed(up, out, r), {
          shape: [r, numel(down.shape.slice(1))],
          data: down.data,
        });
      }
      return matmul(up, down, out, r, inner);
    }
    case "loha": {
      const w1a = need(entry, "hada_w1_a"), w1b = need(entry, "hada_w1_b");
      const w2a = need(entry, "hada_w2_a"), w2b = need(entry, "hada_w2_b");
      const t1 = entry.tensors["hada_t1"], t2 = entry.tensors["hada_t2"];
      let a: Float64Array, b: Float64Array;
      if (t1 && t2) {
        a = tucker(t1, w1a, w1b);
        b = tucker(t2, w2a, w2b);
      } else {
        a = matmul(w1a, w1b, out, w1a.shape[1]!, inner);
        b = matmul(w2a, w2b, out, w2a.shape[1]!, inner);
      }
      for (let i = 0; i < a.length; i++) a[i]! *= b[i]!;
      return a;
    }
    case "lokr": {
      const w1 = lokrPart(entry, 1), w2 = lokrPart(entry, 2);
      const [a, c] = w1.dims, [b, dK] = w2.dims;
      const res = new Float64Array(out * inner);
      // kron: delta[i*b + j, ci*dK + x] = w1[i, ci] * w2[j, x] (x runs over d and the kernel).
      for (let i = 0; i < a; i++) {
        for (let ci = 0; ci < c; ci++) {
          const v = w1.data[i * c + ci]!;
          if (v === 0) continue;
          for (let j = 0; j < b; j++) {
            const o = ((i * b + j) * c + ci) * dK, src = j * dK;
            for (let x = 0; x < dK; x++) res[o + x] = v * w2.data[src + x]!;
          }
        }
      }
      return res;
    }
    case "full":
      return Float64Array.from(need(entry, "diff").data);
    case "norm":
      return Float64Array.from(entry.wNorm?.data ?? new Float32Array(numel(shape)));
  }
}

// A LoKr factor as a matrix [rows, cols] (w2's cols include the kernel).
function lokrPart(entry: LoraEntry, n: 1 | 2): { dims: [number, number]; data: Float64Array } {
  const full = entry.tensors[`lokr_w${n}`];
  if (full) {
    return {
      dims: [full.shape[0]!, numel(full.shape.slice(1))],
      data: Float64Array.from(full.data),
    };
  }
  const wa = need(entry, `lokr_w${n}_a`), wb = need(entry, `lokr_w${n}_b`);
  const t = n === 2 ? entry.tensors["lokr_t2"] : undefined;
  if (t) {
    // LyCORIS rebuild_tucker(t2, w2_a [r, b], w2_b [r, d]) -> [b, d, k, k].
    return {
      dims: [wa.shape[1]!, wb.shape[1]! * numel(t.shape.slice(2))],
      data: tucker(t, wa, wb),
    };
  }
  const rows = wa.shape[0]!, r = wa.shape[1]!, cols = numel(wb.shape.slice(1));
  return { dims: [rows, cols], data: matmul(wa, wb, rows, r, cols) };
}

/** The module weight shape an entry's delta takes (its `moduleShape`, else what its tensors say). */
export function entryShape(entry: LoraEntry): number[] {
  if (entry.moduleShape) return entry.moduleShape;
  if (entry.kind === "lora" && entry.down && entry.up) {
    const k = entry.mid ? entry.mid.shape.slice(2) : entry.down.shape.slice(2);
    return [entry.up.shape[0]!, entry.down.shape[1]!, ...k];
  }
  if (entry.kind === "full" && entry.tensors["diff"]) return [...entry.tensors["diff"].shape];
  if (entry.kind === "norm" && (entry.wNorm ?? entry.bNorm)) {
    return [(entry.wNorm ?? entry.bNorm)!.shape[0]!];
  }
  throw new LoraFileError(
    `LoRA entry "${entry.path}" (${entry.kind}) does not say its module's weight shape; read it ` +
      "with readLora, or set moduleShape",
  );
}

/**
 * The weight and bias delta of one entry: what merging adds to the module at `multiplier`.
 * LoRA/LoCon `up @ down * alpha / r` (Tucker: `up x mid x down`); LoHa
 * `(w1a @ w1b) * (w2a @ w2b) * scale`; LoKr `kron(w1, w2) * scale`; full `diff` / `diff_b`;
 * norm `w_norm` / `b_norm`; with `dora_scale`, `multiplier * (dora * (W + d) / |W + d| - W)`
 * where the norm runs over the axis the `dora_scale` shape names (output rows or input columns).
 *
 * @example
 * ```ts
 * import { entryDelta } from "./delta.ts";
 * const d = entryDelta({
 *   component: "unet", path: "a.to_q", kind: "lora", alpha: 1, tensors: {},
 *   down: { shape: [1, 2], data: new Float32Array([1, 2]) },
 *   up: { shape: [2, 1], data: new Float32Array([3, 4]) },
 * });
 * console.log(d.weight?.data); // Float32Array [3, 6, 4, 8]
 * ```
 */
export function entryDelta(entry: LoraEntry, options: EntryDeltaOptions = {}): EntryDelta {
  const m = options.multiplier ?? 1;
  const shape = entryShape(entry);
  const result: EntryDelta = {};
  if (entry.kind === "norm") {
    if (entry.wNorm) result.weight = scaled(entry.wNorm, m);
    if (entry.bNorm) result.bias = scaled(entry.bNorm, m);
    return result;
  }
  const raw = rawDelta(entry, shape);
  const s = entryScale(entry);
  const dora = entry.tensors["dora_scale"];
  if (dora) {
    result.weight = {
      shape: [...shape],
      data: doraDelta(entry, raw, s, dora, shape, m, options.base),
    };
  } else {
    const d = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) d[i] = raw[i]! * s * m;
    result.weight = { shape: [...shape], data: d };
  }
  const db = entry.kind === "full" ? entry.tensors["diff_b"] : undefined;
  if (db) result.bias = scaled(db, m);
  return result;
}

function scaled(t: HostTensor, m: number): HostTensor {
  return { shape: [...t.shape], data: t.data.map((v) => v * m) };
}

function doraDelta(
  entry: LoraEntry,
  raw: Float64Array,
  s: number,
  dora: HostTensor,
  shape: readonly number[],
  m: number,
  base: HostTensor | undefined,
): Float32Array {
  if (!base || base.data.length !== raw.length) {
    throw new LoraFileError(
      `LoRA entry "${entry.path}" has a dora_scale, so its delta needs the module's base weight ` +
        `of shape [${shape.join(", ")}]; pass it as options.base`,
    );
  }
  const out = shape[0]!, inCh = shape[1] ?? 1, K = numel(shape.slice(2));
  const inner = inCh * K;
  const merged = new Float64Array(raw.length);
  for (let i = 0; i < raw.length; i++) merged[i] = base.data[i]! + raw[i]! * s;
  const onOut = dora.shape[0] === out && dora.data.length === out;
  const n = onOut ? out : inCh;
  if (dora.data.length !== n) {
    throw new LoraFileError(
      `LoRA entry "${entry.path}" has a dora_scale of shape [${dora.shape.join(", ")}], which ` +
        `fits neither the ${out} output rows nor the ${inCh} input channels; the file is damaged`,
    );
  }
  const norm = new Float64Array(n);
  for (let o = 0; o < out; o++) {
    for (let x = 0; x < inner; x++) {
      const v = merged[o * inner + x]!;
      norm[onOut ? o : Math.floor(x / K)]! += v * v;
    }
  }
  const d = new Float32Array(raw.length);
  for (let o = 0; o < out; o++) {
    for (let x = 0; x < inner; x++) {
      const c = onOut ? o : Math.floor(x / K);
      const i = o * inner + x;
      const w = merged[i]! * dora.data[c]! / (Math.sqrt(norm[c]!) + F32_EPS);
      d[i] = m * (w - base.data[i]!);
    }
  }
  return d;
}
