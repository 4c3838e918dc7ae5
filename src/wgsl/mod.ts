/**
 * WGSL kernel sources as TypeScript string builders (no GPU calls here).
 *
 * @module
 */
export * from "./builder.ts";
export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./rng.ts";
