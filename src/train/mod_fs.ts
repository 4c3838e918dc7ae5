/**
 * The trainer's file-system parts: kohya folders and dataset TOML files, image decoding (sharp),
 * atomic writes, the log folder, checkpoint pruning and `--save-state` / `--resume` folders.
 *
 * @example
 * ```ts ignore
 * import { datasetFromFolders, loadDataset } from "./mod_fs.ts";
 * const ds = await loadDataset(await datasetFromFolders("train_images", { regDataDir: "reg" }));
 * console.log(ds.trainCount);
 * ```
 *
 * @module
 */
export * from "./folders_fs.ts";
export * from "./images_fs.ts";
export * from "./atomic_fs.ts";
export * from "./run_log_fs.ts";
export * from "./checkpoints_fs.ts";
export * from "./train_state_fs.ts";
export * from "./latent_cache_fs.ts";
export * from "./trainer_fs.ts";
