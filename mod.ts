/**
 * denoise: Stable Diffusion LoRA training and sampling on WebGPU, with no ML framework underneath.
 *
 * @example
 * ```ts
 * import { getDevice, randn, silu } from "jsr:@denoise/sd";
 * await getDevice();
 * console.log(await silu(randn([4])).toArray());
 * ```
 *
 * @module
 */
export * from "./src/ops/mod.ts";
export * from "./src/schedule/mod.ts";
export * from "./src/nn/mod.ts";
export * from "./src/nn/mod_fs.ts";
export * from "./src/lora/mod.ts";
export * from "./src/adabn/mod.ts";
export * from "./src/ops/profiler_fs.ts";

if (import.meta.main) {
  const { main } = await import("./src/cli/main.ts");
  Deno.exit(await main(Deno.args));
}
