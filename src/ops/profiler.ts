/**
 * Per-dispatch GPU profiler. While it is on, every dispatch runs in its own compute pass with
 * `timestampWrites` where the adapter has `timestamp-query` (GPU time), and otherwise is submitted
 * alone and timed from submit to done on the CPU. Records are aggregated by kernel (name, storage
 * variant, shape class), by op and by autograd phase (forward, backward, optimizer); the table
 * gives GFLOP/s where the op states its work and GB/s of bound bytes otherwise. Off (the default),
 * the runtime checks one boolean per dispatch and records nothing.
 *
 * `DENOISE_PROFILE=1` turns it on for the whole process and prints the table at exit (see
 * `profiler_fs.ts` for the Chrome trace file).
 *
 * @module
 */
import { deviceInfo } from "./device.ts";

/** The autograd phase a dispatch belongs to. */
export type ProfilePhase = "forward" | "backward" | "optimizer";

/** One timed dispatch. */
export interface ProfileRecord {
  /** Kernel name with its storage variant, e.g. `binary_add f16`. */
  kernel: string;
  /** Shape class: the bytes bound to the dispatch, rounded up to a power of 4. */
  shape: string;
  /** The op that issued it (the recorded autograd op, or the kernel name when none). */
  op: string;
  /** Autograd phase. */
  phase: ProfilePhase;
  /** Floating-point operations, when the op states them (0 otherwise). */
  flops: number;
  /** Bytes bound to the dispatch (inputs and outputs), a lower bound of its memory traffic. */
  bytes: number;
  /** Issue order of the dispatch in this process. */
  seq: number;
  /** Start and end in milliseconds since the profile began. */
  startMs: number;
  endMs: number;
}

/** One row of the aggregated table. */
export interface ProfileRow {
  /** The aggregation key (kernel + shape class, op, or phase). */
  key: string;
  calls: number;
  totalMs: number;
  /** Fraction of the total time, 0..1. */
  share: number;
  /** GFLOP/s when the work is known in FLOPs, else undefined. */
  gflops?: number;
  /** GB/s of bound bytes when no FLOPs are known, else undefined. */
  gbps?: number;
}

/** What a profile found: the raw records, aggregates and the timing source. */
export interface ProfileReport {
  /** `timestamp-query` (GPU time) or `cpu` (submit-to-done per dispatch). */
  source: "timestamp-query" | "cpu";
  records: ProfileRecord[];
  byKernel: ProfileRow[];
  byOp: ProfileRow[];
  byPhase: ProfileRow[];
  /** Sum of all dispatch times in ms. */
  totalMs: number;
}

type Pending = Omit<ProfileRecord, "startMs" | "endMs" | "op"> & { op: string | null };

/** How the profiler times dispatches. */
export type ProfileTiming = "auto" | "cpu";

const MAX_QUERIES = 2 * 256 + 2;

let depth = 0;
let phase: ProfilePhase = "forward";
let pending: Pending[] = []; // recorded in the open encoder, not yet submitted
let unlabeled: Pending[] = []; // dispatches since the last op label
let issued = 0; // sequence number of the next dispatch
let cpuTiming = false; // time on the CPU even where timestamp queries exist
const done: ProfileRecord[] = [];
let inflight: Promise<void>[] = [];
let originNs: bigint | null = null;
const originMs = performance.now();
let cpuClock = 0; // ms: end of the last CPU-timed dispatch
let querySet: GPUQuerySet | null = null;
let resolveBuf: GPUBuffer | null = null;

/** Whether dispatches are being profiled now (one boolean read; the runtime's only cost when off). */
export function profiling(): boolean {
  return depth > 0;
}

/**
 * Starts recording (nested calls count; pair each with `stopProfiling`). `cpu` timing submits each
 * dispatch alone and times it from submit to done even where the adapter has timestamp queries.
 */
export function startProfiling(timing: ProfileTiming = "auto"): void {
  if (depth++ === 0) cpuTiming = timing === "cpu";
}

/** The sequence number the next dispatch will get (a mark for `profileReport`). */
export function profileMark(): number {
  return issued;
}

/** Whether this profile reads GPU timestamps (else the runtime submits each dispatch alone). */
export function profileUsesTimestamps(): boolean {
  return !cpuTiming && deviceInfo().timestamps;
}

/** Stops recording once every `startProfiling` has been matched. */
export function stopProfiling(): void {
  if (depth > 0) depth--;
}

/** Runs `fn` with dispatches attributed to `p` (backward, optimizer). */
export function inPhase<T>(p: ProfilePhase, fn: () => T): T {
  const prev = phase;
  phase = p;
  try {
    return fn();
  } finally {
    phase = prev;
  }
}

/** Names every dispatch issued since the last label after the op `op` (called by `record`). */
export function labelOp(op: string): void {
  if (depth === 0) return;
  for (const r of unlabeled) r.op ??= op;
  unlabeled = [];
}

function shapeClass(bytes: number): string {
  let b = 1024;
  while (b < bytes) b *= 4;
  return b >= 1 << 30
    ? `<=${b / (1 << 30)}GiB`
    : b >= 1 << 20
    ? `<=${b / (1 << 20)}MiB`
    : `<=${b / 1024}KiB`;
}

/**
 * Called by the runtime for each dispatch while profiling: returns the timestamp writes of its
 * pass (or undefined for CPU timing, in which case the runtime submits the dispatch alone).
 */
export function profileDispatch(
  kernel: string,
  variant: string,
  bytes: number,
  flops: number,
): GPUComputePassTimestampWrites | undefined {
  const rec: Pending = {
    kernel: variant ? `${kernel} ${variant}` : kernel,
    shape: shapeClass(bytes),
    op: null,
    phase,
    flops,
    bytes,
    seq: issued++,
  };
  pending.push(rec);
  unlabeled.push(rec);
  if (!profileUsesTimestamps()) return undefined;
  querySet ??= deviceInfo().device.createQuerySet({ type: "timestamp", count: MAX_QUERIES });
  const i = pending.length - 1;
  return { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
}

/** Whether the runtime must submit now (the query set is full). */
export function profileBatchFull(): boolean {
  return 2 * pending.length + 2 > MAX_QUERIES;
}

function finish(p: Pending, startMs: number, endMs: number): void {
  done.push({ ...p, op: p.op ?? p.kernel, startMs, endMs });
}

/** Called by the runtime just before `encoder.finish()`: resolves this batch's queries. */
export function profileBeforeSubmit(encoder: GPUCommandEncoder): (() => void) | undefined {
  if (pending.length === 0) return undefined;
  const batch = pending;
  pending = [];
  const { device } = deviceInfo();
  if (!profileUsesTimestamps()) {
    const submitted = performance.now() - originMs;
    return () => {
      inflight.push(
        device.queue.onSubmittedWorkDone().then(() => {
          const end = performance.now() - originMs;
          const start = Math.max(submitted, cpuClock);
          const each = (end - start) / batch.length;
          batch.forEach((p, j) => finish(p, start + j * each, start + (j + 1) * each));
          cpuClock = end;
        }),
      );
    };
  }
  const n = 2 * batch.length;
  resolveBuf ??= device.createBuffer({
    size: MAX_QUERIES * 8,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const staging = device.createBuffer({
    size: n * 8,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  encoder.resolveQuerySet(querySet!, 0, n, resolveBuf, 0);
  encoder.copyBufferToBuffer(resolveBuf, 0, staging, 0, n * 8);
  return () => {
    inflight.push(
      staging.mapAsync(GPUMapMode.READ).then(() => {
        const t = new BigInt64Array(staging.getMappedRange().slice(0));
        staging.destroy();
        originNs ??= t[0]!;
        const ms = (v: bigint) => Number(v - originNs!) / 1e6;
        batch.forEach((p, j) => finish(p, ms(t[2 * j]!), ms(t[2 * j + 1]!)));
      }),
    );
  };
}

/** Whether every recorded dispatch has been submitted and its timing has come back. */
export function profileIdle(): boolean {
  return pending.length === 0 && inflight.length === 0;
}

/** Waits for every submitted batch's timings to come back. */
export async function profileSettled(): Promise<void> {
  while (inflight.length > 0) {
    const now = [...inflight];
    await Promise.all(now);
    inflight = inflight.filter((p) => !now.includes(p));
  }
}

function aggregate(
  records: readonly ProfileRecord[],
  key: (r: ProfileRecord) => string,
  total: number,
): ProfileRow[] {
  const m = new Map<string, { calls: number; ms: number; flops: number; bytes: number }>();
  for (const r of records) {
    const k = key(r);
    const a = m.get(k) ?? { calls: 0, ms: 0, flops: 0, bytes: 0 };
    a.calls++;
    a.ms += r.endMs - r.startMs;
    a.flops += r.flops;
    a.bytes += r.bytes;
    m.set(k, a);
  }
  return [...m.entries()]
    .map(([k, a]) => {
      const row: ProfileRow = {
        key: k,
        calls: a.calls,
        totalMs: a.ms,
        share: total > 0 ? a.ms / total : 0,
      };
      if (a.ms > 0 && a.flops > 0) row.gflops = a.flops / a.ms / 1e6;
      else if (a.ms > 0) row.gbps = a.bytes / a.ms / 1e6;
      return row;
    })
    .sort((x, y) => y.totalMs - x.totalMs);
}

/**
 * The report over the records with sequence numbers in `[from, to)` (default: all) whose timings
 * have come back (await `profileSettled` first for all of them).
 */
export function profileReport(from = 0, to = Infinity): ProfileReport {
  const records = done.filter((r) => r.seq >= from && r.seq < to).sort((a, b) => a.seq - b.seq);
  const totalMs = records.reduce((a, r) => a + r.endMs - r.startMs, 0);
  return {
    source: profileUsesTimestamps() ? "timestamp-query" : "cpu",
    records,
    byKernel: aggregate(records, (r) => `${r.kernel} ${r.shape}`, totalMs),
    byOp: aggregate(records, (r) => r.op, totalMs),
    byPhase: aggregate(records, (r) => r.phase, totalMs),
    totalMs,
  };
}

function fmtRows(title: string, rows: readonly ProfileRow[], limit: number): string {
  const lines = [`| ${title} | calls | total ms | share | rate |`, "|---|---:|---:|---:|---:|"];
  for (const r of rows.slice(0, limit)) {
    const rate = r.gflops !== undefined
      ? `${r.gflops.toFixed(2)} GFLOP/s`
      : r.gbps !== undefined
      ? `${r.gbps.toFixed(2)} GB/s`
      : "";
    lines.push(
      `| ${r.key} | ${r.calls} | ${r.totalMs.toFixed(1)} | ${(100 * r.share).toFixed(1)}% | ` +
        `${rate} |`,
    );
  }
  return lines.join("\n");
}

/**
 * Formats a report as Markdown tables (top kernels, ops and phases).
 *
 * @example
 * ```ts
 * import { formatProfile, getDevice, profile, randn, silu } from "../../mod.ts";
 * await getDevice();
 * const report = await profile(() => silu(randn([1024])).dispose());
 * console.log(formatProfile(report));
 * ```
 */
export function formatProfile(report: ProfileReport, limit = 25): string {
  return [
    `Profile (${report.source}): ${report.records.length} dispatches, ` +
    `${report.totalMs.toFixed(1)} ms of kernel time`,
    fmtRows("kernel", report.byKernel, limit),
    fmtRows("op", report.byOp, limit),
    fmtRows("phase", report.byPhase, limit),
  ].join("\n\n");
}

/** The records as a Chrome trace (`chrome://tracing`, Perfetto): one track per phase. */
export function chromeTrace(report: ProfileReport): { traceEvents: Record<string, unknown>[] } {
  const tid = { forward: 1, backward: 2, optimizer: 3 } as const;
  const meta = Object.entries(tid).map(([name, t]) => ({
    name: "thread_name",
    ph: "M",
    pid: 1,
    tid: t,
    args: { name },
  }));
  const events = report.records.map((r) => ({
    name: r.kernel,
    cat: r.op,
    ph: "X",
    pid: 1,
    tid: tid[r.phase],
    ts: r.startMs * 1000,
    dur: Math.max(0, (r.endMs - r.startMs) * 1000),
    args: { op: r.op, shape: r.shape, flops: r.flops, bytes: r.bytes },
  }));
  return { traceEvents: [...meta, ...events] };
}
