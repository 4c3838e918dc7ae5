/**
 * safetensors files on disk (Deno): `SafetensorsFile.open(path)` reads the header, then each
 * tensor's byte range on demand; `writeSafetensors` writes atomically (a temporary file in the
 * same folder, then a rename).
 *
 * @module
 */
import {
  type ByteSource,
  planSafetensors,
  readSafetensorsHeader,
  type SafetensorsInput,
  SafetensorsReader,
} from "./safetensors.ts";
import { SafetensorsError } from "./errors.ts";
import { quote } from "./_untrusted.ts";

/**
 * Opens a file as a {@link ByteSource}. Reads are serialized (seek then read), so concurrent
 * `read` calls are safe.
 */
export async function openFileSource(path: string): Promise<ByteSource> {
  let kind: Deno.FileInfo;
  try {
    kind = await Deno.stat(path);
  } catch (e) {
    throw new SafetensorsError(
      `Cannot open ${quote(path, 200)} (${quote((e as Error).message)}); check the path and ` +
        "its permissions",
    );
  }
  if (!kind.isFile) {
    // checked before opening: opening a FIFO or a device can block forever
    throw new SafetensorsError(
      `The path ${quote(path, 200)} is ${
        kind.isDirectory ? "a folder" : "not a regular file"
      }; pass ` +
        "the path of a .safetensors file",
    );
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new SafetensorsError(
      `Cannot open ${quote(path, 200)} (${quote((e as Error).message)}); check the path and ` +
        "its permissions",
    );
  }
  let size: number;
  try {
    const st = await file.stat();
    if (!st.isFile) throw new Error("not a regular file");
    size = st.size;
  } catch (e) {
    file.close();
    throw new SafetensorsError(
      `Cannot read ${quote(path, 200)} (${quote((e as Error).message)}); pass the path of a ` +
        ".safetensors file",
    );
  }
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;
  const readAt = async (offset: number, length: number): Promise<Uint8Array> => {
    const n = Math.max(0, Math.min(length, size - offset));
    const buf = new Uint8Array(n);
    await file.seek(offset, Deno.SeekMode.Start);
    let at = 0;
    while (at < n) {
      const got = await file.read(buf.subarray(at));
      if (got === null) break;
      at += got;
    }
    return at === n ? buf : buf.subarray(0, at);
  };
  return {
    name: path,
    size,
    read(offset: number, length: number): Promise<Uint8Array> {
      const p = queue.then(() => readAt(offset, length));
      queue = p.catch(() => {});
      return p;
    },
    close(): void {
      if (closed) return;
      closed = true;
      file.close();
    },
  };
}

/**
 * A safetensors file on disk, read tensor by tensor (the whole file is never loaded at once).
 *
 * @example
 * ```ts
 * import { SafetensorsFile, writeSafetensors } from "./safetensors_fs.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensors(path, { w: { data: new Float32Array([1, 2, 3]), shape: [3] } });
 * using f = await SafetensorsFile.open(path);
 * console.log(f.keys, f.info("w"), await f.read("w"));
 * ```
 */
export class SafetensorsFile extends SafetensorsReader {
  /** Opens `path` and validates its header; throws {@link SafetensorsError} on a bad file. */
  static async open(path: string): Promise<SafetensorsFile> {
    const source = await openFileSource(path);
    try {
      return new SafetensorsFile(source, await readSafetensorsHeader(source));
    } catch (e) {
      source.close?.();
      throw e;
    }
  }
}

/**
 * Writes tensors (F32 or F16) and optional `__metadata__` to `path` atomically: everything is
 * validated first, the bytes go to a temporary file in the same folder, and a rename replaces
 * `path` only once the write has finished. A failure leaves any existing file untouched and no
 * temporary file behind.
 *
 * @example
 * ```ts
 * import { writeSafetensors } from "./safetensors_fs.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensors(
 *   path,
 *   { "lora.weight": { data: new Float32Array(4), shape: [2, 2], dtype: "F16" } },
 *   { ss_network_dim: "2" },
 * );
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, SafetensorsInput>>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const plan = planSafetensors(tensors, metadata, path);
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const dir = slash >= 0 ? path.slice(0, slash + 1) : "";
  const base = path.slice(slash + 1);
  const tmp = `${dir}.${base}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    await writeAll(file, plan.header);
    for (const chunk of plan.chunks()) await writeAll(file, chunk);
    await file.sync();
    file.close();
    file = undefined;
    await Deno.rename(tmp, path);
  } catch (e) {
    try {
      file?.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(
      `Cannot write "${path}" (${(e as Error).message}); nothing was changed there, so check ` +
        "the folder exists, is writable and has free space",
    );
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.byteLength) at += await file.write(bytes.subarray(at));
}
