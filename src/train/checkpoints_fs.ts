/**
 * Deleting old checkpoints and state folders so the newest N of a kind stay (kohya's
 * `--save-last-n-steps` / `--save-last-n-epochs` spirit, counted in files).
 *
 * @module
 */
import { join } from "node:path";
import { removeFolder } from "./atomic_fs.ts";
import { checkpointsToPrune } from "./checkpoint_names.ts";

/**
 * Removes `name`'s epoch or step checkpoints (files or `-state` folders, by `ext`) beyond the
 * newest `keep` in `dir`; returns what it removed.
 *
 * @example
 * ```ts
 * import { pruneCheckpoints } from "./checkpoints_fs.ts";
 * await pruneCheckpoints("out", "dog", "step", 3);
 * ```
 */
export async function pruneCheckpoints(
  dir: string,
  name: string,
  kind: "epoch" | "step",
  keep: number,
  ext = ".safetensors",
): Promise<string[]> {
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
  const gone = checkpointsToPrune(names, name, kind, keep, ext);
  for (const n of gone) await removeFolder(join(dir, n));
  return gone;
}
