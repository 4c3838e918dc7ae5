/**
 * AdaBN: re-estimates a batch-norm model's statistics on target data (exact two-pass or online
 * merge), optionally per timestep band, before or during LoRA training or alone, and saves them
 * inside a LoRA file under their own `adabn.` key prefix.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { UNet2DConditionModel } from "../nn/mod.ts";
 * import { AdaBN } from "./mod.ts";
 * await getDevice();
 * const unet = new UNet2DConditionModel({
 *   blockOutChannels: [8, 16], layersPerBlock: 1, attentionHeads: 2, crossAttentionDim: 8,
 *   normNumGroups: 4, norm: "batch",
 * });
 * using adabn = AdaBN.attach(unet, { bands: [0, 500, 1000] });
 * adabn.estimate([() => unet.forward(randn([2, 4, 8, 8]), [100, 900], randn([2, 3, 8]))]);
 * console.log(adabn.layers.length > 0, adabn.statistics(adabn.layers[0]!, 1).count); // true 64
 * unet.dispose();
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./bands.ts";
export * from "./moments.ts";
export * from "./snapshot.ts";
export * from "./adabn.ts";
export * from "./file.ts";
