/**
 * The trainer's portable parts (web APIs only): kohya dataset configs and folder-name rules,
 * aspect buckets, caption augmentation, the seeded data loader, LR schedules and per-parameter
 * rates (block weights, LoRA+), sample-prompt lines, the training step with multi-resolution
 * noise, the loop's plumbing, progress lines, loss-curve SVG, the HTML report and checkpoint
 * names. File-system parts are in `mod_fs.ts`.
 *
 * @example
 * ```ts
 * import { lrSchedule, makeBucketResolutions, parseSamplePrompts } from "./mod.ts";
 * console.log(makeBucketResolutions([512, 512]).length); // 17
 * console.log(lrSchedule({ name: "linear", totalSteps: 10 })(5)); // 0.5
 * console.log(parseSamplePrompts("a dog --w 640")[0]!.width); // 640
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./random.ts";
export * from "./buckets.ts";
export * from "./captions.ts";
export * from "./dataset_config.ts";
export * from "./reg_balance.ts";
export * from "./toml.ts";
export * from "./run_config.ts";
export * from "./data_loader.ts";
export * from "./lr_schedule.ts";
export * from "./lr_groups.ts";
export * from "./sample_prompts.ts";
export * from "./multires_noise.ts";
export * from "./train_step.ts";
export * from "./loop.ts";
export * from "./progress.ts";
export * from "./loss_svg.ts";
export * from "./report_html.ts";
export * from "./checkpoint_names.ts";
export * from "./latent_cache.ts";
export * from "./text_cache.ts";
