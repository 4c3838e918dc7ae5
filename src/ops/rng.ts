/**
 * Seeded, counter-based random tensors: uniform, normal and dropout masks. A seed gives the same
 * bits on every adapter: integer hashing, and normals from an integer-interpolated quantile table
 * (no `log`/`cos`, whose precision differs between adapters).
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { EW_GROUP } from "../wgsl/elementwise.ts";
import { NORMAL_OCTAVES, NORMAL_SEGMENTS, randomKernel, type RandomKind } from "../wgsl/rng.ts";
import { deviceInfo } from "./device.ts";
import { type DType, numel, Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { labelOp } from "./profiler.ts";
import { ArgumentError } from "./errors.ts";
import { concat } from "./concat.ts";

/**
 * A random stream: a seed and a counter that advances with every draw.
 *
 * @example
 * ```ts
 * import { Generator, getDevice, randn } from "../../mod.ts";
 * await getDevice();
 * const g = new Generator(1);
 * const noise = randn([2, 4, 8, 8], { generator: g });
 * console.log(noise.shape, g.offset);
 * ```
 */
export class Generator {
  /** The seed (an integer; the low 32 bits key the hash, the next 21 the stream). */
  readonly seed: number;
  /** Counters used so far. */
  offset = 0;
  /** Creates a stream for `seed`. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new ArgumentError(`A seed must be a whole number >= 0, got ${seed}`);
    }
    this.seed = seed;
  }
  /** Reserves `count` counters and returns the first. */
  take(count: number): number {
    const o = this.offset;
    this.offset += count;
    if (this.offset > 2 ** 32) {
      throw new ArgumentError("This generator has used 2^32 counters; start a new seed");
    }
    return o;
  }
}

/**
 * One stream per row of a batch: a draw of shape `[B, ...]` takes row `b` from `streams[b]`, as
 * a draw of shape `[1, ...]` from that stream alone would, so a batch of samples reproduces the
 * same samples made one at a time.
 *
 * @example
 * ```ts
 * import { Generator, getDevice, randn, RowGenerators } from "../../mod.ts";
 * await getDevice();
 * const both = randn([2, 4], { generator: new RowGenerators([new Generator(1), new Generator(2)]) });
 * const second = randn([1, 4], { generator: new Generator(2) });
 * console.log((await both.toArray())[4] === (await second.toArray())[0]); // true
 * ```
 */
export class RowGenerators {
  /** The stream of each row. */
  readonly streams: readonly Generator[];
  /** Streams for the rows of a batch, in row order. */
  constructor(streams: readonly Generator[]) {
    if (streams.length === 0) {
      throw new ArgumentError("RowGenerators needs at least one stream; pass one per batch row");
    }
    this.streams = streams;
  }
}

/** Where random values come from: one stream, or one stream per batch row. */
export type RandomStream = Generator | RowGenerators;

let defaultGenerator = new Generator(0);

/** Reseeds the default generator (used when no generator is passed). */
export function manualSeed(seed: number): void {
  defaultGenerator = new Generator(seed);
}

/** Options of the random factories. */
export interface RandomOptions {
  /** The stream to draw from (default: the process-wide one, see `manualSeed`). */
  generator?: RandomStream;
  /** Storage dtype (default f32). */
  dtype?: DType;
  /** Whether the new tensor is a leaf that collects gradients. */
  requiresGrad?: boolean;
}

function draw(
  kind: RandomKind,
  shape: readonly number[],
  a: number,
  b: number,
  o: RandomOptions,
): Tensor {
  const g = o.generator ?? defaultGenerator;
  if (g instanceof RowGenerators) return drawRows(kind, shape, a, b, o, g.streams);
  const dtype = o.dtype ?? "f32";
  const n = numel(shape);
  const offset = g.take(n);
  const y = new Tensor(shape, dtype, undefined, o.requiresGrad ?? false);
  if (n === 0) return y;
  const k = cachedKernel(`random ${kind} ${dtype}`, () => randomKernel(kind, dtype));
  const seedLo = g.seed % 2 ** 32, seedHi = Math.floor(g.seed / 2 ** 32);
  const res = kind === "normal" ? [y.binding, normalTableBinding()] : [y.binding];
  dispatch(k, res, [n, seedLo, seedHi, offset, a, b], grid1d(Math.ceil(n / EW_GROUP)));
  labelOp(`random ${kind}`);
  return y;
}

// y: [B, ...] with row b drawn as [1, ...] from streams[b]
function drawRows(
  kind: RandomKind,
  shape: readonly number[],
  a: number,
  b: number,
  o: RandomOptions,
  streams: readonly Generator[],
): Tensor {
  if (shape[0] !== streams.length) {
    throw new ArgumentError(
      `A random draw of shape [${shape.join(", ")}] has ${shape[0] ?? "no"} rows but its ` +
        `generator has ${streams.length} streams; give one stream per batch row`,
    );
  }
  if (streams.length === 1) return draw(kind, shape, a, b, { ...o, generator: streams[0]! });
  const row = [1, ...shape.slice(1)];
  const parts = streams.map((generator) =>
    draw(kind, row, a, b, { ...o, generator, requiresGrad: false })
  );
  try {
    const y = concat(parts, 0);
    y.requiresGrad = o.requiresGrad ?? false;
    return y;
  } finally {
    parts.forEach((p) => p.dispose());
  }
}

/** Uniform values in [low, high) (default [0, 1)). */
export function rand(
  shape: readonly number[],
  options: RandomOptions & { low?: number; high?: number } = {},
): Tensor {
  return draw("uniform", shape, options.low ?? 0, options.high ?? 1, options);
}

/** Normal values (default mean 0, std 1): one counter per element, inverse CDF by table. */
export function randn(
  shape: readonly number[],
  options: RandomOptions & { mean?: number; std?: number } = {},
): Tensor {
  return draw("normal", shape, options.mean ?? 0, options.std ?? 1, options);
}

/** A dropout mask: 0 with probability `p`, else `1 / (1 - p)`. */
export function dropoutMask(
  shape: readonly number[],
  p: number,
  options: RandomOptions = {},
): Tensor {
  if (!(p >= 0 && p < 1)) {
    throw new ArgumentError(`Dropout probability must be in [0, 1), got ${p}`);
  }
  return draw("dropout", shape, p, 1 / (1 - p), options);
}

function mix(v: number): number {
  let x = v >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

function hashRef(seed: number, c: number): number {
  const lo = seed % 2 ** 32, hi = Math.floor(seed / 2 ** 32);
  return mix((c >>> 0) ^ mix((lo ^ mix((hi + 0x9e3779b9) >>> 0)) >>> 0));
}

/** CPU reference of the uniform draw for counter `c` (bit-exact with the kernel). */
export function uniformRef(seed: number, c: number): number {
  return (hashRef(seed, c) >>> 8) * 5.9604644775390625e-8;
}

let table: Int32Array<ArrayBuffer> | null = null;
let tableBuffer: GPUBuffer | null = null;

function erfc(x: number): number {
  if (x < 3) {
    let sum = x, term = x;
    for (let n = 1; n < 300; n++) {
      term *= -x * x / n;
      sum += term / (2 * n + 1);
      if (Math.abs(term) < 1e-18) break;
    }
    return 1 - 2 / Math.sqrt(Math.PI) * sum;
  }
  let f = 0;
  for (let n = 80; n >= 1; n--) f = n / 2 / (x + f);
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / (x + f);
}

/**
 * The normal quantile table: for octave e and point j, |z| (Q20 fixed point) with
 * P(|Z| > z) = 2^-(e+1) (1 + j / 64), found by bisection on erfc in float64.
 */
export function normalTable(): Int32Array<ArrayBuffer> {
  if (table) return table;
  const t = new Int32Array(NORMAL_OCTAVES * (NORMAL_SEGMENTS + 1));
  for (let e = 0; e < NORMAL_OCTAVES; e++) {
    for (let j = 0; j <= NORMAL_SEGMENTS; j++) {
      const p = 2 ** -(e + 1) * (1 + j / NORMAL_SEGMENTS);
      let lo = 0, hi = 10;
      for (let it = 0; it < 80; it++) {
        const mid = (lo + hi) / 2;
        if (erfc(mid / Math.SQRT2) > p) lo = mid;
        else hi = mid;
      }
      t[e * (NORMAL_SEGMENTS + 1) + j] = Math.round(((lo + hi) / 2) * 2 ** 20);
    }
  }
  return table = t;
}

function normalTableBinding(): { buffer: GPUBuffer; size: number } {
  const t = normalTable();
  if (!tableBuffer) {
    // a permanent 8 KiB constant, kept out of the pool and its live-bytes counter
    tableBuffer = deviceInfo().device.createBuffer({
      size: t.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    deviceInfo().device.queue.writeBuffer(tableBuffer, 0, t);
  }
  return { buffer: tableBuffer, size: t.byteLength };
}

/** CPU reference of `randn` element `i` of a draw that started at counter `offset` (bit-exact). */
export function normalRef(seed: number, offset: number, i: number): number {
  const h = hashRef(seed, offset + i);
  const q = (((h & 0x7fffffff) * 2) + 1) >>> 0;
  const e = 31 - Math.floor(Math.log2(q));
  const r = q - 2 ** (31 - e);
  const F = e <= 17 ? Math.floor(r / 2 ** (17 - e)) : r * 2 ** (e - 17);
  const k = e * (NORMAL_SEGMENTS + 1) + (F >> 8);
  const t = normalTable();
  const t0 = t[k]!, t1 = t[k + 1]!;
  let z = t0 + (((t1 - t0) * (F & 255)) >> 8);
  if (h >>> 31) z = -z;
  return Math.fround(z * 9.5367431640625e-7);
}
