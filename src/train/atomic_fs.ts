/**
 * Safe writes for run outputs: every file goes to a temporary name in the same folder and is
 * renamed into place, so a reader (or a run killed mid-write) never sees a partial file under the
 * final name; an unwritable folder is an error naming it.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { ConfigError } from "./errors.ts";

function unwritable(dir: string, e: unknown): never {
  const why = e instanceof Error ? e.message : String(e);
  throw new ConfigError(
    `The output folder ${dir} is not writable (${why}); choose another folder or fix its permissions`,
  );
}

/**
 * Creates `dir` if needed and proves it writable with a probe file, before a run starts.
 *
 * @example
 * ```ts
 * import { ensureWritableDir } from "./atomic_fs.ts";
 * await ensureWritableDir("out/run1");
 * ```
 */
export async function ensureWritableDir(dir: string): Promise<void> {
  const probe = join(dir, `.write-probe-${crypto.randomUUID().slice(0, 8)}`);
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeFile(probe, new Uint8Array(0), { createNew: true });
    await Deno.remove(probe);
  } catch (e) {
    unwritable(dir, e);
  }
}

/**
 * Writes `data` to `path` through a temporary file and a rename.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic_fs.ts";
 * await writeFileAtomic("out/loss.svg", "<svg/>");
 * ```
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${path.slice(dir.length + 1)}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    await Deno.writeFile(tmp, bytes, { createNew: true });
  } catch (e) {
    if (
      e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotFound ||
      e instanceof Deno.errors.NotADirectory
    ) {
      unwritable(dir, e);
    }
    throw e;
  }
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Writes a folder of files atomically: into a temporary sibling folder, then one rename, so the
 * folder name only ever shows a complete set. An existing folder of that name is replaced (it is
 * renamed aside first and removed after).
 *
 * @example
 * ```ts
 * import { writeFolderAtomic } from "./atomic_fs.ts";
 * await writeFolderAtomic("out/dog-state", { "train_state.json": "{}" });
 * ```
 */
export async function writeFolderAtomic(
  dir: string,
  files: Readonly<Record<string, Uint8Array | string>>,
): Promise<void> {
  const parent = dirname(dir);
  const id = crypto.randomUUID().slice(0, 8);
  const base = dir.slice(parent.length + 1);
  const tmp = join(parent, `.${base}.${id}.tmp`);
  try {
    await Deno.mkdir(tmp, { recursive: true });
  } catch (e) {
    unwritable(parent, e);
  }
  try {
    for (const [name, data] of Object.entries(files)) {
      await Deno.writeFile(
        join(tmp, name),
        typeof data === "string" ? new TextEncoder().encode(data) : data,
      );
    }
    const old = join(parent, `.${base}.${id}.old`);
    const existed = await Deno.rename(dir, old).then(() => true, () => false);
    await Deno.rename(tmp, dir);
    if (existed) await Deno.remove(old, { recursive: true });
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
