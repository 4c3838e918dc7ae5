// Shared test helpers: seeded data, tolerance checks, and `checkOp`, which runs an op against its
// CPU reference and its gradients against central finite differences of that reference.
import { backward, getDevice, mul, scope, sum, type Tensor, tensor } from "../mod.ts";
import { ensureRuntimeDir } from "../src/cli/runtime_dir.ts";

ensureRuntimeDir(); // before the device: Mesa warns at device creation when it is unset
await getDevice();

/** Deterministic pseudo-random numbers in [-1, 1) (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

/** `n` seeded values in [-1, 1), as float64. */
export function randomData(n: number, seed: number): Float64Array {
  const r = seeded(seed);
  return Float64Array.from({ length: n }, r);
}

/** Asserts `|got - want| <= atol + rtol * |want|` elementwise, naming the worst element. */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  atol: number,
  rtol: number,
  what = "values",
): void {
  if (got.length !== want.length) {
    throw new Error(`${what}: length ${got.length} differs from expected ${want.length}`);
  }
  let worst = -1, excess = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!, w = want[i]!;
    const e = Math.abs(g - w) - (atol + rtol * Math.abs(w));
    if (!(e <= 0) && (worst < 0 || e > excess || Number.isNaN(g))) {
      worst = i;
      excess = Number.isNaN(e) ? Infinity : e;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${what}: element ${worst} is ${got[worst]} but expected ${want[worst]} ` +
        `(atol ${atol}, rtol ${rtol})`,
    );
  }
}

/** Largest absolute value. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** One op test: inputs, the GPU op, its float64 reference and the tolerances. */
export interface OpCase {
  /** Input shapes. */
  shapes: number[][];
  /** The op on GPU tensors. */
  gpu: (...xs: Tensor[]) => Tensor;
  /** The reference on float64 arrays (same input order), returning the flat output. */
  ref: (...xs: Float64Array[]) => Float64Array;
  /** Input data (default seeded uniform [-1, 1)). */
  data?: ((input: number, size: number) => Float64Array) | undefined;
  /** Which inputs get a gradient check (default all). */
  grads?: boolean[];
  /** Forward tolerance, absolute and relative (default 1e-5, 1e-4: f32 rounding). */
  atol?: number;
  rtol?: number;
  /** Gradient tolerance relative to the largest finite-difference gradient (default 1e-3). */
  gradTol?: number;
  /** Elements per input checked by finite differences (default 64, chosen at random). */
  fdSamples?: number;
}

/**
 * Checks forward against the reference and backward against central finite differences of the
 * reference (float64, h = 1e-6) on the loss `sum(y * r)` for a fixed random `r`.
 */
export async function checkOp(c: OpCase): Promise<void> {
  const inputs = c.shapes.map((s, i) => {
    const n = s.reduce((a, b) => a * b, 1);
    // round to f32 so GPU and reference see the same numbers
    return Float64Array.from(c.data?.(i, n) ?? randomData(n, 17 + i * 31), Math.fround);
  });
  const want = c.ref(...inputs);
  const r = Float64Array.from(randomData(want.length, 99), Math.fround);
  const grads = await scope(async () => {
    const ts = inputs.map((d, i) =>
      tensor(d, c.shapes[i]!, { requiresGrad: c.grads?.[i] ?? true })
    );
    const y = c.gpu(...ts);
    assertClose(await y.toArray(), want, c.atol ?? 1e-5, c.rtol ?? 1e-4, "forward");
    backward(sum(mul(y, tensor(r, y.shape))));
    const out: (Float32Array | null)[] = [];
    for (const t of ts) out.push(t.grad ? await t.grad.toArray() : null);
    for (const t of ts) t.grad?.dispose();
    return out;
  });
  const loss = (xs: Float64Array[]) => {
    const y = c.ref(...xs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i]! * r[i]!;
    return s;
  };
  const pick = seeded(7);
  inputs.forEach((x, i) => {
    if (!(c.grads?.[i] ?? true)) return;
    const g = grads[i];
    if (!g) throw new Error(`input ${i} got no gradient`);
    const idx = x.length <= (c.fdSamples ?? 64)
      ? [...x.keys()]
      : Array.from({ length: c.fdSamples ?? 64 }, () => Math.floor((pick() + 1) / 2 * x.length));
    const fd: number[] = [], got: number[] = [];
    for (const j of idx) {
      const h = 1e-6 * Math.max(1, Math.abs(x[j]!));
      const xs = inputs.map((v) => v.slice());
      xs[i]![j] = x[j]! + h;
      const up = loss(xs);
      xs[i]![j] = x[j]! - h;
      fd.push((up - loss(xs)) / (2 * h));
      got.push(g[j]!);
    }
    const scale = Math.max(maxAbs(fd), 1e-3);
    assertClose(got, fd, (c.gradTol ?? 1e-3) * scale, 0, `gradient of input ${i}`);
  });
}

/** Total bytes of the files under `dir`, recursively. */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    total += e.isDirectory ? await folderBytes(p) : (await Deno.stat(p)).size;
  }
  return total;
}
