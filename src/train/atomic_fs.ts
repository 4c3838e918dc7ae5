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

/** The folder a state-folder link points to (an absolute path), or null for a plain folder. */
async function linkTarget(dir: string): Promise<string | null> {
  try {
    if (!(await Deno.lstat(dir)).isSymlink) return null;
    return join(dirname(dir), await Deno.readLink(dir));
  } catch {
    return null;
  }
}

/**
 * Writes a folder of files atomically. The files go into a hidden sibling folder
 * (`.<name>.<id>.d`), and `<name>` becomes a relative symbolic link to it through one rename over
 * the previous link, so the name always shows one complete set, even when the process is killed
 * at any point (rename over a link is atomic; a folder cannot be swapped in one step). Leftovers
 * of an interrupted write are hidden siblings, removed by the next write. Where links cannot be
 * made (Windows without the privilege) or a plain folder of that name exists, the old folder is
 * renamed aside first, which leaves a moment without the name.
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
  const data = join(parent, `.${base}.${id}.d`), link = join(parent, `.${base}.${id}.link`);
  const previous = await linkTarget(dir);
  // leftovers of writes killed midway: hidden siblings that the name does not point to
  try {
    for await (const e of Deno.readDir(parent)) {
      const path = join(parent, e.name);
      if (e.name.startsWith(`.${base}.`) && path !== previous) {
        await Deno.remove(path, { recursive: true }).catch(() => {});
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) unwritable(parent, e);
  }
  try {
    await Deno.mkdir(data, { recursive: true });
  } catch (e) {
    unwritable(parent, e);
  }
  try {
    for (const [name, bytes] of Object.entries(files)) {
      await Deno.writeFile(
        join(data, name),
        typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes,
      );
    }
    const linked = await Deno.symlink(`.${base}.${id}.d`, link, { type: "dir" }).then(
      () => true,
      () => false,
    );
    if (linked && (previous !== null || !(await exists(dir)))) {
      await Deno.rename(link, dir);
      if (previous !== null) await Deno.remove(previous, { recursive: true }).catch(() => {});
      return;
    }
    if (linked) await Deno.remove(link);
    const old = join(parent, `.${base}.${id}.old`);
    const existed = await Deno.rename(dir, old).then(() => true, () => false);
    await Deno.rename(data, dir);
    if (existed) await Deno.remove(old, { recursive: true });
  } catch (e) {
    for (const p of [data, link]) await Deno.remove(p, { recursive: true }).catch(() => {});
    throw e;
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/**
 * Removes a folder written by {@link writeFolderAtomic}: the link and the folder it points to
 * (or a plain folder).
 *
 * @example
 * ```ts
 * import { removeFolder } from "./atomic_fs.ts";
 * await removeFolder("out/dog-step00000100-state");
 * ```
 */
export async function removeFolder(dir: string): Promise<void> {
  const target = await linkTarget(dir);
  await Deno.remove(dir, { recursive: true });
  if (target !== null) await Deno.remove(target, { recursive: true }).catch(() => {});
}
