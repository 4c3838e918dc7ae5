/**
 * A private `XDG_RUNTIME_DIR` for processes that have none, so Mesa's software drivers do not
 * print "XDG_RUNTIME_DIR is invalid or not set" (twice) when the GPU device is created. Mesa
 * reads the variable at device creation, so call this before the adapter is requested.
 *
 * @module
 */

/**
 * Sets `XDG_RUNTIME_DIR` to `<tmp>/denoise-runtime-<uid>` (created with mode 0700, reused only
 * when it is a real folder owned by this user and closed to others) when the variable is unset
 * or names no folder. Does nothing on Windows, when it is already valid, or without permission
 * to read the environment. Returns the folder set, or null.
 *
 * @example
 * ```ts
 * import { ensureRuntimeDir } from "./runtime_dir.ts";
 * ensureRuntimeDir(); // before getDevice()
 * ```
 */
export function ensureRuntimeDir(): string | null {
  try {
    if (Deno.build.os === "windows") return null;
    const current = Deno.env.get("XDG_RUNTIME_DIR");
    if (current && isFolder(current)) return null;
    const uid = Deno.uid();
    const base = (Deno.env.get("TMPDIR") || "/tmp").replace(/\/+$/, "");
    let dir = `${base}/denoise-runtime-${uid}`;
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
    } catch {
      const st = Deno.lstatSync(dir);
      if (!st.isDirectory || st.uid !== uid || ((st.mode ?? 0) & 0o077) !== 0) {
        dir = Deno.makeTempDirSync({ prefix: "denoise-runtime-" });
      }
    }
    Deno.env.set("XDG_RUNTIME_DIR", dir);
    return dir;
  } catch {
    return null; // no permission to read the environment or the temp folder: leave it be
  }
}

function isFolder(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}
