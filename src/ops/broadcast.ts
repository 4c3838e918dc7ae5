/**
 * Broadcasting rules (numpy's): shapes align on the right; a dimension of 1 stretches.
 *
 * @module
 */
import { fmtShape, ShapeError } from "./errors.ts";

/** The broadcast shape of two shapes, or a ShapeError naming both. */
export function broadcastShapes(a: readonly number[], b: readonly number[], op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        `${op}() cannot broadcast shapes ${fmtShape(a)} and ${fmtShape(b)}; ` +
          "dimensions must match or be 1 (aligned from the right)",
      );
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Row-major strides of a contiguous shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Strides to read `shape` as if it had `outShape` (0 on stretched axes), right-aligned. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const own = contiguousStrides(shape);
  const off = outShape.length - shape.length;
  return outShape.map((d, i) => {
    const j = i - off;
    if (j < 0) return 0;
    return shape[j] === 1 && d !== 1 ? 0 : own[j]!;
  });
}

/** Flat index into a broadcast operand for a flat index into the output (CPU references). */
export function broadcastIndex(
  i: number,
  outShape: readonly number[],
  strides: readonly number[],
): number {
  let r = i;
  let idx = 0;
  for (let d = outShape.length - 1; d >= 0; d--) {
    const c = r % outShape[d]!;
    r = Math.floor(r / outShape[d]!);
    idx += c * strides[d]!;
  }
  return idx;
}
