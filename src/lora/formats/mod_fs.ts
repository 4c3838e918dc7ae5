/**
 * LoRA files on disk (Deno): {@link readLoraFile} and the atomic {@link writeLoraFile}.
 *
 * @module
 */
export * from "./read_fs.ts";
export * from "./write_fs.ts";
