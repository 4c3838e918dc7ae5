/**
 * Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", eq. 6):
 * `out = u + s (c - u)` from the unconditional and conditional predictions.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { lincomb } from "../ops/lincomb.ts";
import { fmtShape, ShapeError } from "../ops/errors.ts";

// uncond: [B, ...], cond: [B, ...] -> [B, ...]
/**
 * `uncond + scale (cond - uncond)`, computed as `(1 - scale) uncond + scale cond` in one dispatch.
 *
 * @example
 * ```ts
 * import { getDevice, tensor } from "../../mod.ts";
 * import { guide } from "./guidance.ts";
 * await getDevice();
 * const g = guide(tensor([1, 1], [2]), tensor([2, 3], [2]), 7);
 * console.log(await g.toArray()); // 8, 15
 * ```
 */
export function guide(uncond: Tensor, cond: Tensor, scale: number): Tensor {
  if (uncond.shape.join() !== cond.shape.join()) {
    throw new ShapeError(
      `guide() needs predictions of one shape, got ${fmtShape(uncond.shape)} and ` +
        `${fmtShape(cond.shape)}`,
    );
  }
  return lincomb([{ x: uncond, c: 1 - scale }, { x: cond, c: scale }]);
}

// out: [2B, ...] (unconditional half first) -> [B, ...]
/**
 * Guidance from one batched model call whose first half is unconditional and second half
 * conditional (the order `sample` batches them in), in one dispatch.
 */
export function guideBatched(out: Tensor, scale: number): Tensor {
  const b2 = out.shape[0] ?? 0;
  if (out.shape.length < 1 || b2 % 2 !== 0) {
    throw new ShapeError(
      `guideBatched() needs an even batch [unconditional; conditional], got ${fmtShape(out.shape)}`,
    );
  }
  const shape = [b2 / 2, ...out.shape.slice(1)];
  const half = out.size / 2;
  return lincomb([{ x: out, c: 1 - scale }, { x: out, c: scale, offset: half }], { shape });
}

/** CPU reference of guidance: `u + s (c - u)` per element (float64). */
export function guideRef(
  uncond: ArrayLike<number>,
  cond: ArrayLike<number>,
  scale: number,
): Float64Array {
  return Float64Array.from(
    { length: uncond.length },
    (_, i) => uncond[i]! + scale * (cond[i]! - uncond[i]!),
  );
}
