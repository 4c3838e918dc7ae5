/**
 * Typed errors of the tensor layer. Messages are sentence case, name what was wrong and what to
 * do, and carry no final period.
 *
 * @module
 */

/** Base class of every error this library throws on purpose. */
export class DenoiseError extends Error {
  /** Creates the error with its message. */
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** No WebGPU adapter, or the device could not be created. */
export class NoAdapterError extends DenoiseError {}

/** Operand shapes do not fit the op. */
export class ShapeError extends DenoiseError {}

/** Operand dtypes do not fit the op, or the adapter lacks a dtype. */
export class DTypeError extends DenoiseError {}

/** A tensor was used after `dispose()`. */
export class DisposedError extends DenoiseError {}

/** A tensor or binding is larger than the adapter allows. */
export class LimitError extends DenoiseError {}

/** The GPU reported a validation or out-of-memory error. */
export class GPUFailureError extends DenoiseError {}

/** An argument is out of its valid range. */
export class ArgumentError extends DenoiseError {}

/** Formats a shape as `[2, 3, 4]` for messages. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
