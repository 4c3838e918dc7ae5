/**
 * Packed operand textures of weights, kept between calls so that the texture matmul (software
 * adapters) packs each frozen weight once instead of on every product. Only tensors passed to
 * `cachePacksOf` (module parameters) are cached; a buffer's packs are dropped as soon as a kernel
 * writes the buffer (an optimizer step) or the buffer returns to the pool, so a pack is never
 * stale. The cache holds at most `setPackCacheLimit` bytes (default 512 MiB, so that it does not undo
 * the memory saved by f16 weights; raise it to trade memory for speed); past that, products
 * pack as usual.
 *
 * @module
 */
import type { Tensor } from "./tensor.ts";
import { releaseTexture } from "./pool.ts";

const eligible = new WeakSet<GPUBuffer>();
const packs = new Map<GPUBuffer, Map<string, GPUTexture>>();
const cached = new WeakSet<GPUTexture>();
let bytes = 0;
let limit = 512 * 2 ** 20;

/**
 * Lets the texture matmul keep packed copies of `t` (its whole storage) between calls.
 *
 * @example
 * ```ts
 * import { cachePacksOf, getDevice, matmul, randn } from "../../mod.ts";
 * await getDevice();
 * const w = randn([64, 64]);
 * cachePacksOf(w); // a frozen weight: packed once on software adapters
 * matmul(randn([8, 64]), w).dispose();
 * ```
 */
export function cachePacksOf(t: Tensor): void {
  eligible.add(t.buffer);
}

/** Sets the most bytes the cache may hold (0 turns it off and frees what it holds). */
export function setPackCacheLimit(maxBytes: number): void {
  limit = maxBytes;
  if (maxBytes <= 0) { for (const b of [...packs.keys()]) forgetPacks(b); }
}

/** Bytes of packed textures the cache holds now. */
export function packCacheBytes(): number {
  return bytes;
}

/** The pack of `src` under `key` (its layout), from the cache or made (and kept if allowed). */
export function cachedPack(src: Tensor, key: string, make: () => GPUTexture): GPUTexture {
  const buffer = src.buffer;
  if (!eligible.has(buffer)) return make();
  const hit = packs.get(buffer)?.get(key);
  if (hit) return hit;
  const tex = make();
  const size = tex.width * tex.height * 16;
  if (bytes + size > limit) return tex;
  let m = packs.get(buffer);
  if (!m) packs.set(buffer, m = new Map());
  m.set(key, tex);
  cached.add(tex);
  bytes += size;
  return tex;
}

/** Returns a texture to the pool unless the cache keeps it. */
export function releasePack(tex: GPUTexture): void {
  if (!cached.has(tex)) releaseTexture(tex);
}

/**
 * Forgets a buffer that returns to the pool: its packs, and that it belonged to a parameter
 * (a temporary tensor that gets the buffer next must not have its packs kept, since it may be
 * freed while a product still reads its pack).
 */
export function releasePacksOf(buffer: GPUBuffer): void {
  eligible.delete(buffer);
  forgetPacks(buffer);
}

/** Drops the packs of a buffer that is being written or freed. */
export function forgetPacks(buffer: GPUBuffer): void {
  const m = packs.get(buffer);
  if (!m) return;
  packs.delete(buffer);
  for (const tex of m.values()) {
    cached.delete(tex);
    bytes -= tex.width * tex.height * 16;
    releaseTexture(tex);
  }
}
