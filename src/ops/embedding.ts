/**
 * Embedding lookup with CPU-side ids; the gradient is a deterministic scatter-add built from a
 * CSR list of the positions per vocabulary row (the ids are known on the CPU, so it is sorted
 * there).
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { embeddingGradKernel, embeddingKernel, SHAPE_GROUP } from "../wgsl/shape.ts";
import { deviceInfo } from "./device.ts";
import { numel, Tensor } from "./tensor.ts";
import { acquireBuffer, releaseBuffer } from "./pool.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { ArgumentError, fmtShape, LimitError, ShapeError } from "./errors.ts";

/** Uploads u32 data into a pooled buffer; release it after the dispatch that reads it. */
function uploadU32(data: Uint32Array<ArrayBuffer>): { buffer: GPUBuffer; size: number } {
  const bytes = Math.max(4, data.byteLength);
  const buffer = acquireBuffer(bytes);
  if (data.byteLength > 0) {
    deviceInfo().device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  }
  return { buffer, size: bytes };
}

/** Row offsets (V + 1) then positions grouped by row, in position order (a counting sort). */
function embeddingCsr(ids: ArrayLike<number>, vocab: number): Uint32Array<ArrayBuffer> {
  const csr = new Uint32Array(vocab + 1 + ids.length);
  for (let p = 0; p < ids.length; p++) csr[ids[p]! + 1]!++;
  for (let v = 0; v < vocab; v++) csr[v + 1]! += csr[v]!;
  const next = csr.slice(0, vocab);
  for (let p = 0; p < ids.length; p++) csr[vocab + 1 + next[ids[p]!]!++] = p;
  return csr;
}

function gradLaunch(dy: Tensor, ids: Uint32Array<ArrayBuffer>, V: number, D: number): Tensor {
  const dw = new Tensor([V, D], dy.dtype);
  if (dw.size === 0) return dw;
  const csr = uploadU32(embeddingCsr(ids, V));
  const k = cachedKernel(`embedding_grad ${dy.dtype}`, () => embeddingGradKernel(dy.dtype));
  dispatch(
    k,
    [dy.binding, csr, dw.binding],
    [dw.size, D, V],
    grid1d(Math.ceil(dw.size / SHAPE_GROUP)),
  );
  releaseBuffer(csr.buffer);
  return dw;
}

// weight: [V, D], ids: [...idsShape] (CPU, values < V) -> y: [...idsShape, D]
/**
 * Looks up rows of `weight` (a `[V, D]` table) for integer ids held on the CPU, e.g. token ids
 * of shape `[B, T]`, giving `[B, T, D]`. `idsShape` defaults to `[ids.length]`. The gradient to
 * `weight` is a deterministic scatter-add (rows summed in position order). The table must fit
 * one storage binding (128 MiB on the software adapters: CLIP's 49408 x 768 table fits in f16,
 * not in f32); a larger one throws a LimitError.
 *
 * @example
 * ```ts
 * import { embedding, getDevice, tensor } from "../../mod.ts";
 * await getDevice();
 * const w = tensor([0, 1, 10, 11, 20, 21], [3, 2]);
 * const y = embedding(w, [2, 0, 2], [1, 3]);
 * console.log(y.shape, await y.toArray()); // [1, 3, 2], 20, 21, 0, 1, 20, 21
 * ```
 */
export function embedding(
  weight: Tensor,
  ids: Uint32Array | readonly number[],
  idsShape: readonly number[] = [ids.length],
): Tensor {
  if (weight.shape.length !== 2) {
    throw new ShapeError(
      `embedding() needs a [V, D] weight table, got shape ${fmtShape(weight.shape)}`,
    );
  }
  if (numel(idsShape) !== ids.length) {
    throw new ShapeError(
      `embedding() got ${ids.length} ids for ids shape ${fmtShape(idsShape)}, which holds ${
        numel(idsShape)
      }; pass as many ids as the shape has elements`,
    );
  }
  const [V, D] = weight.shape as [number, number];
  const lim = deviceInfo().limits.maxStorageBufferBindingSize;
  if (weight.bytes > lim) {
    throw new LimitError(
      `embedding() weight ${fmtShape(weight.shape)} ${weight.dtype} needs ${weight.bytes} bytes, ` +
        `over this adapter's ${lim}-byte storage binding limit; use f16 or a smaller table`,
    );
  }
  const idx = Uint32Array.from(ids);
  for (let p = 0; p < ids.length; p++) {
    const v = ids[p]!;
    if (!Number.isInteger(v) || v < 0 || v >= V) {
      throw new ArgumentError(
        `embedding() id ${v} at position ${p} is out of range for a table of ${V} rows; ` +
          `ids must be whole numbers in 0..${V - 1}`,
      );
    }
  }
  const y = new Tensor([...idsShape, D], weight.dtype);
  if (y.size > 0) {
    const buf = uploadU32(idx);
    const k = cachedKernel(`embedding ${weight.dtype}`, () => embeddingKernel(weight.dtype));
    dispatch(
      k,
      [weight.binding, buf, y.binding],
      [y.size, D],
      grid1d(Math.ceil(y.size / SHAPE_GROUP)),
    );
    releaseBuffer(buf.buffer);
  }
  return record("embedding", [weight], y, [], (dy) => [gradLaunch(dy, idx, V, D)]);
}

/** CPU reference of `embedding` (float64): the flat `[ids.length, D]` rows. */
export function embeddingRef(
  weight: ArrayLike<number>,
  shape: readonly number[],
  ids: ArrayLike<number>,
): Float64Array {
  const D = shape[1]!;
  const out = new Float64Array(ids.length * D);
  for (let p = 0; p < ids.length; p++) {
    for (let d = 0; d < D; d++) out[p * D + d] = weight[ids[p]! * D + d]!;
  }
  return out;
}
