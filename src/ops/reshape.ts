/**
 * Reshape as a view (no copy), linked in the graph.
 *
 * @module
 */
import type { Tensor } from "./tensor.ts";
import { record } from "./autograd.ts";
import { fmtShape, ShapeError } from "./errors.ts";

/**
 * Views `x` with a new shape of the same element count; one dimension may be -1 (inferred).
 *
 * @example
 * ```ts
 * import { getDevice, reshape, tensor } from "../../mod.ts";
 * await getDevice();
 * console.log(reshape(tensor([1, 2, 3, 4, 5, 6], [2, 3]), [3, -1]).shape); // [3, 2]
 * ```
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const free = shape.filter((d) => d === -1).length;
  if (free > 1 || (free === 1 && (known === 0 || x.size % known !== 0))) {
    throw new ShapeError(`Cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  const full = shape.map((d) => (d === -1 ? x.size / known : d));
  const y = x.view(full);
  return record("reshape", [x], y, [], (dy) => [dy.view(x.shape)]);
}
