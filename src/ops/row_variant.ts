/**
 * The kernel variant choice of the row ops (softmax, layer norm, group norm): one workgroup per
 * row with tree reductions, or one invocation per row without workgroup barriers.
 *
 * @module
 */
import { ROW_THREAD_MAX } from "../wgsl/softmax.ts";
import { deviceInfo } from "./device.ts";
import { ArgumentError } from "./errors.ts";

/** Kernel variant of the row ops (softmax, layer norm, group norm). */
export interface RowKernelOptions {
  /**
   * `workgroup`: one workgroup per row with tree reductions (fast on GPUs); `thread`: one
   * invocation per row, no barriers (fast on software adapters; rows up to 16384); `auto`
   * (default): `thread` on software adapters where the row fits, else `workgroup`.
   */
  variant?: "auto" | "workgroup" | "thread";
}

/**
 * Whether a row op over rows of `n` elements runs one invocation per row; `auto` picks it on
 * software adapters for rows of up to `autoMax` elements.
 */
export function rowThreads(
  n: number,
  variant: RowKernelOptions["variant"] = "auto",
  autoMax: number = ROW_THREAD_MAX,
): boolean {
  if (variant === "thread" && n > ROW_THREAD_MAX) {
    throw new ArgumentError(
      `The one-invocation-per-row kernel takes rows of up to ${ROW_THREAD_MAX} elements, got ` +
        `${n}; use variant "workgroup" or "auto"`,
    );
  }
  return variant === "thread" ||
    (variant === "auto" && deviceInfo().software && n <= Math.min(autoMax, ROW_THREAD_MAX));
}
