/**
 * Compute pipelines cached by WGSL source text.
 *
 * @module
 */
import { deviceInfo } from "./device.ts";

const cache = new Map<string, GPUComputePipeline>();

/** Returns the compute pipeline for a WGSL source (entry point `main`), compiling it once. */
export function pipelineFor(code: string): GPUComputePipeline {
  let p = cache.get(code);
  if (!p) {
    const { device } = deviceInfo();
    p = device.createComputePipeline({
      layout: "auto",
      compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
    });
    cache.set(code, p);
  }
  return p;
}

/** Number of pipelines compiled so far. */
export function pipelineCount(): number {
  return cache.size;
}
