/**
 * Output files of the commands: checked before any long work (the folder exists and takes new
 * files, the path is not a folder or a device) and written atomically (a temporary file in the
 * same folder, then a rename), so a failure never leaves a half-written or truncated file.
 *
 * @module
 */
import { DenoiseError } from "../ops/errors.ts";
import { quote } from "../nn/_untrusted.ts";

/** An output file cannot be written. */
export class OutputError extends DenoiseError {}

function folderOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

function tempName(path: string): string {
  const slash = path.lastIndexOf("/");
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${
    crypto.randomUUID().slice(0, 8)
  }.tmp`;
}

/**
 * Checks that `path` can take a new file: its folder exists and is writable (a probe file is
 * created and removed), and `path` itself is absent or a regular file. Throws
 * {@link OutputError} naming the problem and the fix.
 */
export async function checkOutputPath(path: string): Promise<void> {
  const dir = folderOf(path);
  let st: Deno.FileInfo | null = null;
  try {
    st = await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new OutputError(
        `Cannot check the output ${quote(path)} (${quote((e as Error).message)})`,
      );
    }
  }
  if (st && !st.isFile) {
    throw new OutputError(
      `The output ${quote(path)} is a ${st.isDirectory ? "folder" : "special file"}; ` +
        "pass the path of a regular file to write",
    );
  }
  const probe = tempName(path);
  try {
    await Deno.writeFile(probe, new Uint8Array(0), { createNew: true });
  } catch (e) {
    throw new OutputError(
      `Cannot write into the folder ${quote(dir)} of the output (${
        quote((e as Error).message)
      }); ` +
        "create the folder or choose a writable one",
    );
  }
  await Deno.remove(probe);
}

/**
 * Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then
 * renamed over `path`. On failure the temporary file is removed and `path` is unchanged.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = tempName(path);
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      let at = 0;
      while (at < bytes.byteLength) at += await file.write(bytes.subarray(at));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new OutputError(
      `Cannot write ${quote(path)} (${quote((e as Error).message)}); nothing was changed ` +
        "there, so check the folder is writable and has free space",
    );
  }
}
