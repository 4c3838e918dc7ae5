/**
 * kohya's checkpoint and state names (`train_util.get_epoch_ckpt_name`, `get_step_ckpt_name`,
 * `get_last_ckpt_name` and the `-state` folders) and which old ones to delete to keep the last N.
 *
 * @module
 */

/** Which checkpoint: after an epoch, after a step, or the final one. */
export type CheckpointAt = { epoch: number } | { step: number } | "final";

/**
 * `{name}-{epoch:06d}`, `{name}-step{step:08d}` or `{name}`, plus `ext` (".safetensors"); with
 * `ext` "-state", kohya's state folder names.
 *
 * @example
 * ```ts
 * import { checkpointName } from "./checkpoint_names.ts";
 * console.log(checkpointName("dog", { epoch: 3 })); // dog-000003.safetensors
 * console.log(checkpointName("dog", { step: 500 }, "-state")); // dog-step00000500-state
 * ```
 */
export function checkpointName(name: string, at: CheckpointAt, ext = ".safetensors"): string {
  if (at === "final") return `${name}${ext}`;
  if ("epoch" in at) return `${name}-${String(at.epoch).padStart(6, "0")}${ext}`;
  return `${name}-step${String(at.step).padStart(8, "0")}${ext}`;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Of the names in a folder, the epoch or step checkpoints of `name` (with `ext`) beyond the
 * newest `keep`, oldest first: the ones to delete. The final checkpoint is never listed.
 *
 * @example
 * ```ts
 * import { checkpointsToPrune } from "./checkpoint_names.ts";
 * const names = ["a-000001.safetensors", "a-000002.safetensors", "a-000003.safetensors"];
 * console.log(checkpointsToPrune(names, "a", "epoch", 2)); // ["a-000001.safetensors"]
 * ```
 */
export function checkpointsToPrune(
  names: readonly string[],
  name: string,
  kind: "epoch" | "step",
  keep: number,
  ext = ".safetensors",
): string[] {
  const re = new RegExp(
    `^${escape(name)}-${kind === "epoch" ? "(\\d{6,})" : "step(\\d{8,})"}${escape(ext)}$`,
  );
  const found = names.flatMap((n) => {
    const m = re.exec(n);
    return m ? [{ n, at: Number(m[1]) }] : [];
  }).sort((a, b) => a.at - b.at);
  return found.slice(0, Math.max(0, found.length - Math.max(0, keep))).map((f) => f.n);
}
