/**
 * Evaluation and the procedural world: a seeded stream of captioned scenes of simple shapes
 * (`ProceduralWorld`), the identity and style concept sets, a PNG encoder, a BPE learner for the
 * caption grammar's tokenizer, and measures: colours from pixels, an attribute classifier
 * (shape, count, fill) on our tensor layer, PSNR, SSIM and a Fréchet distance of classifier
 * features. File-system helpers (concept folders, tokenizer folder, classifier files) are in
 * `./mod_fs.ts`.
 *
 * @example
 * ```ts
 * import { measureColours, ProceduralWorld } from "./mod.ts";
 * const item = new ProceduralWorld({ seed: 1 }).item(0);
 * console.log(item.caption, measureColours(item.rgb, 32, 32).object === item.scene.colour);
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./random.ts";
export * from "./palette.ts";
export * from "./shapes.ts";
export * from "./scene.ts";
export * from "./render.ts";
export * from "./caption.ts";
export * from "./world.ts";
export * from "./png.ts";
export * from "./colour_measure.ts";
export * from "./concepts.ts";
export * from "./bpe_learn.ts";
export * from "./caption_tokenizer.ts";
export * from "./classifier.ts";
export * from "./classifier_train.ts";
export * from "./coverage.ts";
export * from "./psnr.ts";
export * from "./ssim.ts";
export * from "./frechet.ts";
