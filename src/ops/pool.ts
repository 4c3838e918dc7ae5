/**
 * Size-bucketed GPU buffer pool with live-bytes and peak-bytes counters. A released buffer is
 * quarantined until the pending commands are submitted, so a later upload into a reused buffer can
 * never overtake a queued kernel that still reads it.
 *
 * @module
 */
import { releasePacksOf } from "./pack_cache.ts";
import { deviceInfo } from "./device.ts";
import { LimitError } from "./errors.ts";

const STORAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST
const UNIFORM = 0x40 | 0x08; // UNIFORM | COPY_DST

const free = new Map<string, GPUBuffer[]>();
let quarantine: [string, GPUBuffer][] = [];
let live = 0;
let peak = 0;
let pooled = 0;

/** Rounds a byte size up to its bucket: powers of two split into quarters, at least 256 bytes. */
export function bucketSize(bytes: number): number {
  if (bytes <= 256) return 256;
  const top = 2 ** Math.ceil(Math.log2(bytes));
  const step = top / 8;
  return Math.ceil(bytes / step) * step;
}

/** Takes a storage buffer of at least `bytes` bytes from the pool (or creates one). */
export function acquireBuffer(bytes: number, uniform = false): GPUBuffer {
  const { device, limits } = deviceInfo();
  const size = bucketSize(bytes);
  if (size > limits.maxBufferSize) {
    throw new LimitError(
      `A buffer of ${bytes} bytes is larger than this adapter allows (${limits.maxBufferSize} bytes); ` +
        "use a smaller batch or resolution",
    );
  }
  const key = `${uniform ? "u" : "s"}${size}`;
  const list = free.get(key);
  let buf = list?.pop();
  if (buf) pooled -= size;
  else buf = device.createBuffer({ size, usage: uniform ? UNIFORM : STORAGE });
  live += size;
  if (live > peak) peak = live;
  return buf;
}

/** Returns a buffer to the pool; it becomes reusable after the next submit. */
export function releaseBuffer(buf: GPUBuffer, uniform = false): void {
  releasePacksOf(buf);
  live -= buf.size;
  quarantine.push([`${uniform ? "u" : "s"}${buf.size}`, buf]);
}

const freeTextures = new Map<string, GPUTexture[]>();
let texQuarantine: GPUTexture[] = [];

/** Takes an `rgba32float` storage texture of exactly `width` x `height` texels from the pool. */
export function acquireTexture(width: number, height: number): GPUTexture {
  const { device, limits } = deviceInfo();
  if (width > limits.maxTextureDimension2D || height > limits.maxTextureDimension2D) {
    throw new LimitError(
      `A ${width} x ${height} texture is larger than this adapter allows ` +
        `(${limits.maxTextureDimension2D} per side)`,
    );
  }
  const tex = freeTextures.get(`${width}x${height}`)?.pop() ??
    device.createTexture({
      size: [width, height],
      format: "rgba32float",
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
    });
  live += width * height * 16;
  if (live > peak) peak = live;
  return tex;
}

/** Returns a texture to the pool; it becomes reusable after the next submit. */
export function releaseTexture(tex: GPUTexture): void {
  live -= tex.width * tex.height * 16;
  texQuarantine.push(tex);
}

/** Called after each submit: quarantined buffers become reusable. */
export function endQuarantine(): void {
  for (const t of texQuarantine) {
    const key = `${t.width}x${t.height}`;
    let list = freeTextures.get(key);
    if (!list) freeTextures.set(key, list = []);
    list.push(t);
  }
  texQuarantine = [];
  for (const [key, buf] of quarantine) {
    let list = free.get(key);
    if (!list) free.set(key, list = []);
    list.push(buf);
    pooled += buf.size;
  }
  quarantine = [];
}

/** Memory counters in bytes. */
export interface MemoryStats {
  /** Bytes of buffers held by live tensors and pending kernels. */
  liveBytes: number;
  /** The highest `liveBytes` since the last `resetPeakBytes()`. */
  peakBytes: number;
  /** Bytes kept in the pool for reuse. */
  pooledBytes: number;
}

/**
 * Current GPU memory counters.
 *
 * @example
 * ```ts
 * import { memoryStats } from "./pool.ts";
 * console.log(memoryStats().peakBytes);
 * ```
 */
export function memoryStats(): MemoryStats {
  return { liveBytes: live, peakBytes: peak, pooledBytes: pooled };
}

/** Sets the peak counter to the current live bytes. */
export function resetPeakBytes(): void {
  peak = live;
}

/** Destroys every pooled buffer (not those in use). */
export function trimPool(): void {
  for (const list of freeTextures.values()) for (const t of list) t.destroy();
  freeTextures.clear();
  for (const list of free.values()) for (const b of list) b.destroy();
  free.clear();
  pooled = 0;
}
