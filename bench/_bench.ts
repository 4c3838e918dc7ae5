// Shared bench helper: registers a `deno bench` entry whose timed region ends only after the GPU
// has finished (sync), and records the time per step and the work (FLOPs or bytes) of each entry so that
// `bench/report.ts` can turn the medians into GFLOP/s or GB/s (samples go to the JSON file named
// by DENOISE_BENCH_SAMPLES, when set).
import { getDevice, sync } from "../mod.ts";

/** Work done by one iteration of a bench entry. */
export interface Work {
  flops?: number;
  bytes?: number;
}

const samplesFile = Deno.env.get("DENOISE_BENCH_SAMPLES");
// bench files run one after another, each in its own isolate: merge into what earlier ones wrote
const samples: Record<string, { work: Work; ms: number[] }> = samplesFile
  ? JSON.parse(await Deno.readTextFile(samplesFile).catch(() => "") || "{}")
  : {};

function note(name: string, work: Work, ms: number): void {
  (samples[name] ??= { work, ms: [] }).ms.push(ms);
  if (samplesFile) Deno.writeTextFileSync(samplesFile, JSON.stringify(samples));
}

/** One bench entry: `setup` runs once (untimed) and returns the step that is timed. */
export interface BenchOp {
  group: string;
  name: string;
  work: Work;
  baseline?: boolean;
  /** Iterations (default Deno's); keep small for slow cases. */
  n?: number | undefined;
  warmup?: number | undefined;
  /** Steps submitted back to back before one wait (default 1): amortizes Deno's ~10 ms
   * completion polling for small ops; the recorded work is multiplied accordingly. */
  reps?: number | undefined;
  /** Returns the timed step; the helper waits for the GPU after each call. */
  setup: () => Promise<() => unknown | Promise<unknown>>;
  /** How to wait for the work (default: our `sync`). */
  wait?: (result: unknown) => Promise<unknown>;
}

/** Registers a bench entry that times submit-to-finish. */
export function benchOp(o: BenchOp): void {
  let step: (() => unknown | Promise<unknown>) | null = null;
  Deno.bench({
    name: o.name,
    group: o.group,
    baseline: o.baseline ?? false,
    ...(o.n ? { n: o.n } : {}),
    ...(o.warmup !== undefined ? { warmup: o.warmup } : {}),
    async fn(b) {
      if (!step) {
        await getDevice();
        step = await o.setup();
        await (o.wait ?? sync)(await step());
      }
      b.start();
      const t0 = performance.now();
      const reps = o.reps ?? 1;
      let r: unknown;
      for (let i = 0; i < reps; i++) r = await step();
      await (o.wait ?? sync)(r);
      b.end();
      note(o.name, o.work, (performance.now() - t0) / reps);
    },
  });
}
