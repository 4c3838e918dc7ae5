/**
 * The evaluation layer's file-system helpers (Deno): writing the concept sets as kohya folders,
 * the caption tokenizer as a tokenizer folder, and saving / loading the attribute classifier.
 *
 * @example
 * ```ts
 * import { writeCaptionTokenizer } from "./mod_fs.ts";
 * await writeCaptionTokenizer(await Deno.makeTempDir());
 * ```
 *
 * @module
 */
export * from "./write_concepts_fs.ts";
export * from "./caption_tokenizer_fs.ts";
export * from "./classifier_fs.ts";
