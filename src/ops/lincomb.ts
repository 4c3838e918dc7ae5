/**
 * Fused linear combinations for samplers: `lincomb` (up to four scaled tensors, read at element
 * offsets, optionally clipped, in one dispatch), `catBatch` (concatenation along the batch axis)
 * and `markNonFinite` / `firstNonFiniteStep` (NaN and infinity detection without a readback per
 * step).
 *
 * @module
 */
import { cachedKernel, type StorageType } from "../wgsl/builder.ts";
import { EW_GROUP } from "../wgsl/elementwise.ts";
import { LINCOMB_MAX_TERMS, lincombKernel, nonFiniteKernel } from "../wgsl/sampler.ts";
import { type DType, numel, Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { zeros } from "./creation.ts";
import { ArgumentError, fmtShape, ShapeError } from "./errors.ts";

/** One term of a linear combination: `c * x[offset + i]`. */
export interface LincombTerm {
  /** The tensor read. */
  x: Tensor;
  /** Its coefficient. */
  c: number;
  /** Element offset into `x` (default 0), e.g. to read the second half of a batch. */
  offset?: number;
}

/** Options of `lincomb`. */
export interface LincombOptions {
  /** Output shape (default the first term's shape). Each term must hold `offset + size` elements. */
  shape?: readonly number[];
  /** Output dtype (default the first term's dtype). */
  dtype?: DType;
  /** Clamp the result to `[lo, hi]` (no gradient flows through a clipped combination). */
  clip?: readonly [number, number];
}

function checkTerms(terms: readonly LincombTerm[], n: number, what: string): void {
  if (terms.length < 1 || terms.length > LINCOMB_MAX_TERMS) {
    throw new ArgumentError(
      `${what} takes 1 to ${LINCOMB_MAX_TERMS} terms, got ${terms.length}; split the sum`,
    );
  }
  for (const [j, t] of terms.entries()) {
    const o = t.offset ?? 0;
    if (!Number.isInteger(o) || o < 0 || o + n > t.x.size) {
      throw new ShapeError(
        `${what} term ${j} reads elements ${o}..${o + n - 1} of a tensor of shape ` +
          `${fmtShape(t.x.shape)}; give an offset and shape that fit inside it`,
      );
    }
  }
}

/** Writes `clip(sum c_j x_j[o_j + i])` into `y[yOffset + i]` for `i < n` (one dispatch). */
function launch(
  y: Tensor,
  yOffset: number,
  n: number,
  terms: readonly LincombTerm[],
  clip?: readonly [number, number],
): void {
  if (n === 0) return;
  const types: StorageType[] = [...terms.map((t) => t.x.dtype), y.dtype];
  const k = cachedKernel(`lincomb ${types.join(" ")}`, () => lincombKernel(types));
  const params = [n, yOffset, clip ? 1 : 0, clip?.[0] ?? 0, clip?.[1] ?? 0];
  for (const t of terms) params.push(t.c);
  for (const t of terms) params.push(t.offset ?? 0);
  dispatch(
    k,
    [...terms.map((t) => t.x.binding), y.binding],
    params,
    grid1d(Math.ceil(n / EW_GROUP)),
  );
}

// x_j: [>= o_j + n] (any shapes) -> y: shape (n elements); y[i] = sum_j c_j x_j[o_j + i]
/**
 * `y = c0 x0 + c1 x1 + ...` (up to four terms) in one dispatch, each term read from an element
 * offset, optionally clamped. Gradients flow to each term (`c_j dy`, placed at its offset) unless
 * `clip` is set.
 *
 * @example
 * ```ts
 * import { getDevice, tensor } from "../../mod.ts";
 * import { lincomb } from "./lincomb.ts";
 * await getDevice();
 * const a = tensor([1, 2], [2]), b = tensor([10, 20], [2]);
 * console.log(await lincomb([{ x: a, c: 2 }, { x: b, c: -1 }]).toArray()); // -8, -16
 * ```
 */
export function lincomb(terms: readonly LincombTerm[], options: LincombOptions = {}): Tensor {
  const first = terms[0];
  if (!first) throw new ArgumentError("lincomb() needs at least one term");
  const shape = options.shape ?? first.x.shape;
  const n = numel(shape);
  checkTerms(terms, n, "lincomb()");
  const y = new Tensor(shape, options.dtype ?? first.x.dtype);
  launch(y, 0, n, terms, options.clip);
  const inputs = terms.map((t) => t.x);
  if (options.clip && inputs.some((t) => t.requiresGrad)) {
    throw new ArgumentError(
      "lincomb() with clip has no gradient; detach the inputs or drop the clip",
    );
  }
  return record("lincomb", inputs, y, [], (dy) =>
    terms.map((t) => {
      if (!t.x.requiresGrad) return null;
      const g = zeros(t.x.shape, { dtype: t.x.dtype });
      launch(g, t.offset ?? 0, n, [{ x: dy, c: t.c }]);
      return g;
    }));
}

/** CPU reference of `lincomb` (float64, plain loops). */
export function lincombRef(
  terms: readonly { x: ArrayLike<number>; c: number; offset?: number }[],
  n: number,
  clip?: readonly [number, number],
): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (const t of terms) v += t.c * t.x[(t.offset ?? 0) + i]!;
    y[i] = clip ? Math.min(Math.max(v, clip[0]), clip[1]) : v;
  }
  return y;
}

// a: [Ba, ...rest], b: [Bb, ...rest] -> y: [Ba + Bb, ...rest]
/**
 * Concatenates two tensors along the first axis, each scaled by a coefficient (default 1, which
 * copies exactly); two dispatches. Classifier-free guidance uses it to batch the unconditional and
 * conditional model calls.
 *
 * @example
 * ```ts
 * import { getDevice, tensor } from "../../mod.ts";
 * import { catBatch } from "./lincomb.ts";
 * await getDevice();
 * const y = catBatch(tensor([1, 2], [1, 2]), tensor([3, 4], [1, 2]));
 * console.log(y.shape, await y.toArray()); // [2, 2], 1 2 3 4
 * ```
 */
export function catBatch(a: Tensor, b: Tensor, ca = 1, cb = 1): Tensor {
  if (
    a.shape.length < 1 || a.shape.length !== b.shape.length ||
    a.shape.slice(1).join() !== b.shape.slice(1).join()
  ) {
    throw new ShapeError(
      `catBatch() needs shapes that differ only in the first axis, got ${fmtShape(a.shape)} ` +
        `and ${fmtShape(b.shape)}`,
    );
  }
  const y = new Tensor([a.shape[0]! + b.shape[0]!, ...a.shape.slice(1)], a.dtype);
  launch(y, 0, a.size, [{ x: a, c: ca }]);
  launch(y, a.size, b.size, [{ x: b, c: cb }]);
  return record("catBatch", [a, b], y, [], (dy) => [
    a.requiresGrad ? lincomb([{ x: dy, c: ca }], { shape: a.shape }) : null,
    b.requiresGrad ? lincomb([{ x: dy, c: cb, offset: a.size }], { shape: b.shape }) : null,
  ]);
}

/**
 * A one-element flag for `markNonFinite`, starting at "none seen" (dispose it when done).
 *
 * @example
 * ```ts
 * import { getDevice, tensor } from "../../mod.ts";
 * import { firstNonFiniteStep, markNonFinite, nonFiniteFlag } from "./lincomb.ts";
 * await getDevice();
 * const flag = nonFiniteFlag();
 * markNonFinite(tensor([1, NaN], [2]), flag, 3);
 * console.log(await firstNonFiniteStep(flag)); // 3
 * ```
 */
export function nonFiniteFlag(): Tensor {
  return zeros([1]);
}

// x: [...] , flag: [1] (u32 bits) -> flag
/**
 * Records `step` in `flag` if `x` holds a NaN or an infinity and no earlier step was recorded.
 * One dispatch, no readback: read the flag with `firstNonFiniteStep` when convenient.
 */
export function markNonFinite(x: Tensor, flag: Tensor, step: number): void {
  if (flag.size !== 1) {
    throw new ShapeError(`markNonFinite() needs a one-element flag, got ${fmtShape(flag.shape)}`);
  }
  if (x.size === 0) return;
  const k = cachedKernel(`non_finite ${x.dtype}`, () => nonFiniteKernel(x.dtype));
  dispatch(k, [x.binding, flag.binding], [x.size, step], grid1d(Math.ceil(x.size / EW_GROUP)));
}

/** Reads a flag (a sync point): the first step marked non-finite, or -1 if none. */
export async function firstNonFiniteStep(flag: Tensor): Promise<number> {
  const bits = new Uint32Array((await flag.toArray()).buffer, 0, 1)[0]!;
  return bits === 0 ? -1 : bits - 1;
}

/** CPU reference of the non-finite test: the index of the first NaN or infinity, or -1. */
export function nonFiniteRef(x: ArrayLike<number>): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}
