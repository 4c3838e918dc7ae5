/**
 * WGSL kernel sources as TypeScript string builders (no GPU calls here).
 *
 * @module
 */
export * from "./builder.ts";
export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./rng.ts";
export * from "./matmul.ts";
export * from "./conv.ts";
export * from "./shape.ts";
export * from "./loss.ts";
export * from "./norm.ts";
export * from "./softmax.ts";
export * from "./attention.ts";
export * from "./optim.ts";
export * from "./sampler.ts";
export * from "./geglu.ts";
