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
export {
  chromeTrace,
  formatProfile,
  type ProfilePhase,
  type ProfileRecord,
  type ProfileReport,
  type ProfileRow,
  type ProfileTiming,
  startProfiling,
  stopProfiling,
} from "./profiler.ts";
export { profile, type ProfileOptions } from "./profile.ts";
export { cachePacksOf, packCacheBytes, setPackCacheLimit } from "./pack_cache.ts";
export { type Disposable, scope, untrack } from "./scope.ts";
export {
  type DType,
  dtypeBytes,
  type GradNode,
  numel,
  type PendingGrads,
  Tensor,
} from "./tensor.ts";
export * from "./creation.ts";
export * from "./rng.ts";
export * from "./autograd.ts";
export * from "./broadcast.ts";
export * from "./binary.ts";
export { BINARY_EXPR, type BinaryOp } from "../wgsl/elementwise.ts";
export * from "./unary.ts";
export * from "./reduce.ts";
export * from "./reshape.ts";
export * from "./matmul.ts";
export * from "./linear.ts";
export * from "./conv2d.ts";
export * from "./permute.ts";
export * from "./concat.ts";
export * from "./slice.ts";
export * from "./upsample.ts";
export * from "./embedding.ts";
export * from "./mse_loss.ts";
export * from "./cast.ts";
export { groupNorm, groupNormRef } from "./group_norm.ts";
export { groupNormSilu, groupNormSiluRef } from "./group_norm_silu.ts";
export { layerNorm, layerNormRef } from "./layer_norm.ts";
export * from "./batch_norm.ts";
export * from "./softmax.ts";
export * from "./softmax_matmul.ts";
export { type RowKernelOptions, rowThreads } from "./row_variant.ts";
export * from "./attention.ts";
export * from "./adamw.ts";
export * from "./lora.ts";
export * from "./lincomb.ts";
export * from "./geglu.ts";
