/**
 * The thin `Tensor`: shape, dtype, GPU storage, gradient and the autograd node that made it.
 * Tensors are contiguous; `reshape` is a view that shares storage.
 *
 * @module
 */
import { acquireBuffer, releaseBuffer } from "./pool.ts";
import { readBuffer } from "./runtime.ts";
import { deviceInfo } from "./device.ts";
import { track } from "./scope.ts";
import { DisposedError, DTypeError, fmtShape, LimitError, ShapeError } from "./errors.ts";

/** Tensor element types. f16 needs an adapter with `shader-f16`; kernels accumulate in f32. */
export type DType = "f32" | "f16";

/** Bytes per element of a dtype. */
export function dtypeBytes(d: DType): number {
  return d === "f32" ? 4 : 2;
}

/** Reference-counted GPU storage shared by a tensor and its views (internal). */
export class Storage {
  /** Handles sharing this storage. */
  refs = 1;
  /** Wraps a pooled buffer. */
  constructor(readonly buffer: GPUBuffer) {}
  /** Drops one handle; the buffer returns to the pool with the last. */
  release(): void {
    if (--this.refs === 0) releaseBuffer(this.buffer);
  }
}

/**
 * The gradients already accumulated for an op's inputs while the backward pass runs. `take(i)`
 * hands input i's over (null when there is none yet): the op then returns the sum of it and its
 * own gradient for input i (e.g. one kernel reads it while writing dx), which saves the pass that
 * would add the two. The taken tensor is read-only and freed by the backward pass.
 */
export interface PendingGrads {
  /** Input i's gradient so far, handed over to the op; null when there is none. */
  take(i: number): Tensor | null;
}

/** An autograd node: the op that produced a tensor and how to push gradients to its inputs. */
export interface GradNode {
  /** Op name, for messages and debugging. */
  readonly op: string;
  /** The op's inputs (only their identity and `requiresGrad` are used in backward). */
  readonly inputs: readonly Tensor[];
  /**
   * Returns one gradient per input (null where none is needed), given the output gradient; an op
   * may fold an input's gradient accumulated so far into its own (see `PendingGrads`).
   */
  backward(dy: Tensor, pending?: PendingGrads): (Tensor | null)[];
  /** Frees the tensors saved for backward. */
  release(): void;
}

/** Product of the dimensions. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(
        `Shape ${fmtShape(shape)} is invalid; dimensions must be whole numbers >= 0`,
      );
    }
  }
}

/**
 * A GPU tensor. Create tensors with `tensor()`, `zeros()`, `randn()` and the ops; read them back
 * with `toArray()`.
 *
 * @example
 * ```ts
 * import { getDevice, tensor } from "../../mod.ts";
 * await getDevice();
 * using t = tensor([1, 2, 3, 4], [2, 2]);
 * console.log(await t.toArray());
 * ```
 */
export class Tensor {
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Element type in storage. */
  readonly dtype: DType;
  /** Whether gradients flow to this tensor. */
  requiresGrad: boolean;
  /** Accumulated gradient of a leaf that requires it. */
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it is part of a graph. */
  node: GradNode | null = null;
  #storage: Storage;
  #disposed = false;

  /** Wraps storage; use the factory functions rather than this constructor. */
  constructor(shape: readonly number[], dtype: DType, storage?: Storage, requiresGrad = false) {
    checkShape(shape);
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.requiresGrad = requiresGrad;
    if (storage) {
      storage.refs++;
      this.#storage = storage;
    } else {
      if (dtype === "f16" && !deviceInfo().f16) {
        throw new DTypeError(
          "This adapter has no shader-f16 support, so f16 tensors are unavailable; use f32",
        );
      }
      const bytes = Math.max(4, numel(shape) * dtypeBytes(dtype));
      const lim = deviceInfo().limits.maxStorageBufferBindingSize;
      if (bytes > lim) {
        throw new LimitError(
          `A ${dtype} tensor of shape ${
            fmtShape(shape)
          } needs ${bytes} bytes, over this adapter's ` +
            `${lim}-byte storage binding limit; split it or use a smaller batch`,
        );
      }
      this.#storage = new Storage(acquireBuffer(bytes));
    }
    track(this);
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** Bytes of the elements (the buffer may be larger). */
  get bytes(): number {
    return this.size * dtypeBytes(this.dtype);
  }

  /** Whether `dispose()` was called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** The GPU buffer; throws if the tensor was disposed. */
  get buffer(): GPUBuffer {
    if (this.#disposed) {
      throw new DisposedError(
        `A ${this.dtype} tensor of shape ${fmtShape(this.shape)} was used after it was disposed; ` +
          "keep it alive (return it from scope(), or dispose it later)",
      );
    }
    return this.#storage.buffer;
  }

  /** Binding resource for this tensor's elements. */
  get binding(): { buffer: GPUBuffer; size: number } {
    return { buffer: this.buffer, size: Math.max(4, this.bytes) };
  }

  /** A new handle on the same storage (no copy, no graph link). */
  view(shape: readonly number[] = this.shape): Tensor {
    this.buffer; // throws if disposed
    if (numel(shape) !== this.size) {
      throw new ShapeError(
        `Cannot view a tensor of shape ${fmtShape(this.shape)} as ${fmtShape(shape)}; ` +
          "the element counts differ",
      );
    }
    return new Tensor(shape, this.dtype, this.#storage, false);
  }

  /** Reads the elements back as f32 (a sync point: it submits pending work and waits). */
  async toArray(): Promise<Float32Array> {
    const raw = await readBuffer(this.buffer, Math.max(4, this.bytes));
    if (this.dtype === "f32") return new Float32Array(raw, 0, this.size);
    return Float32Array.from(new Float16Array(raw, 0, this.size));
  }

  /** Reads a one-element tensor back as a number. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new ShapeError(`item() needs a one-element tensor, got shape ${fmtShape(this.shape)}`);
    }
    return (await this.toArray())[0]!;
  }

  /** Releases this handle's share of the storage. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#storage.release();
  }

  /** `using t = ...` support. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
