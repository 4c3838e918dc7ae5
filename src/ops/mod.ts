/**
 * The tensor layer: device, memory, `Tensor`, autograd and every op with its CPU reference.
 *
 * @example
 * ```ts
 * import { backward, getDevice, matmul, randn, sum } from "./mod.ts";
 * await getDevice();
 * const w = randn([4, 3], { requiresGrad: true });
 * backward(sum(matmul(randn([2, 4]), w)));
 * console.log(w.grad!.shape);
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./device.ts";
export { bucketSize, type MemoryStats, memoryStats, resetPeakBytes, trimPool } from "./pool.ts";
export { dispatchCount, flush, sync } from "./runtime.ts";
export { pipelineCount } from "./pipeline.ts";
export { scope, untrack } from "./scope.ts";
export { type DType, dtypeBytes, type GradNode, numel, Tensor } from "./tensor.ts";
export * from "./creation.ts";
export * from "./rng.ts";
export * from "./autograd.ts";
export * from "./broadcast.ts";
export * from "./binary.ts";
export * from "./unary.ts";
export * from "./reduce.ts";
export * from "./reshape.ts";
