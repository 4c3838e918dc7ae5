/**
 * Per-dispatch GPU profiler with two timers:
 * - `timestamp-query`: every dispatch runs in its own compute pass with `timestampWrites` (GPU
 *   time). The default on hardware adapters that have the feature.
 * - `cpu`: dispatches run as usual and are captured; afterwards each distinct dispatch (same
 *   pipeline, bindings, params and grid) is replayed alone, repeated until it outlasts the
 *   submit-to-done latency, with its writable bindings redirected to scratch buffers and textures,
 *   and timed from submit to done. The default on software adapters, whose timestamps do not track
 *   the work (llvmpipe reports a 512^3 matmul in 1 ms that takes 50 ms), and without the feature.
 * The `cpu` timer replays copy commands (buffer to texture, buffer to buffer: operand packs, the
 * copied im2col) the same way, as `copy_to_texture` and `copy_buffer` rows; `timestamp-query`
 * cannot time them (only passes take timestamps) and leaves them out.
 * Records are aggregated by kernel (name, storage variant, shape class), by op and by autograd
 * phase (forward, backward, optimizer); the table gives GFLOP/s where the op states its work and
 * GB/s of bound bytes otherwise. Off (the default), the runtime checks one boolean per dispatch
 * and records nothing.
 *
 * `DENOISE_PROFILE=1` turns it on for the whole process and prints the table at exit (see
 * `profiler_fs.ts` for the Chrome trace file).
 *
 * @module
 */
import { deviceInfo } from "./device.ts";
import type { Resource } from "./runtime.ts";

/** The autograd phase a dispatch belongs to. */
export type ProfilePhase = "forward" | "backward" | "optimizer";

/** One timed dispatch, or one copy command (`cpu` timer only). */
export interface ProfileRecord {
  /** `dispatch` (a kernel) or `copy` (a buffer-to-texture or buffer-to-buffer copy). */
  command: "dispatch" | "copy";
  /** Kernel name with its storage variant, e.g. `binary_add f16`; `copy_to_texture` and
   * `copy_buffer` for copies. */
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
  /** Start in milliseconds since the profile began. */
  startMs: number;
  /** End in milliseconds since the profile began. */
  endMs: number;
}

/** One row of the aggregated table. */
export interface ProfileRow {
  /** The aggregation key (kernel + shape class, op, or phase). */
  key: string;
  /** Number of dispatches in the row. */
  calls: number;
  /** Summed time of those dispatches in ms. */
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
  /** `timestamp-query` (GPU time) or `cpu` (submit-to-done of each dispatch replayed alone). */
  source: "timestamp-query" | "cpu";
  /** One record per dispatch. */
  records: ProfileRecord[];
  /** Rows aggregated by kernel and shape class. */
  byKernel: ProfileRow[];
  /** Rows aggregated by op. */
  byOp: ProfileRow[];
  /** Rows aggregated by phase. */
  byPhase: ProfileRow[];
  /** Sum of all dispatch times in ms. */
  totalMs: number;
}

/** What the `cpu` timer needs to run a dispatch again on its own. */
export interface ReplayCapture {
  pipeline: GPUComputePipeline;
  resources: readonly Resource[];
  /** Indices of the bindings the kernel writes (redirected to scratch when replayed). */
  writes: number[];
  /** The params uniform's bytes, or null. */
  uniform: ArrayBuffer | null;
  groups: [number, number, number];
}

/**
 * What the `cpu` timer needs to run a copy again on its own: it encodes `reps` copies of the same
 * size into scratch destinations it creates (returned, to be destroyed after the submit).
 */
export interface CopyCapture {
  /** The replay's key: kind and extents. */
  key: string;
  /** Encodes the copies into `encoder`. */
  encode(device: GPUDevice, encoder: GPUCommandEncoder, reps: number): (GPUBuffer | GPUTexture)[];
}

type Pending = Omit<ProfileRecord, "startMs" | "endMs" | "op"> & {
  op: string | null;
  capture?: ReplayCapture;
  copy?: CopyCapture;
};

/** How the profiler times dispatches: `auto` picks `timestamp-query` on hardware adapters that
 * have it and `cpu` otherwise. */
export type ProfileTiming = "auto" | "timestamp-query" | "cpu";

const MAX_QUERIES = 2 * 256 + 2;

let depth = 0;
let phase: ProfilePhase = "forward";
let context: string | null = null; // op that owns the dispatches now (see inOp)
let pending: Pending[] = []; // recorded in the open encoder, not yet submitted
let unlabeled: Pending[] = []; // dispatches since the last op label
let issued = 0; // sequence number of the next dispatch
let timing: ProfileTiming = "auto";
let captured: Pending[] = []; // cpu timer: waiting for their replay
const done: ProfileRecord[] = [];
let inflight: Promise<void>[] = [];
let originNs: bigint | null = null;
let querySet: GPUQuerySet | null = null;
let resolveBuf: GPUBuffer | null = null;

/** Whether dispatches are being profiled now (one boolean read; the runtime's only cost when off). */
export function profiling(): boolean {
  return depth > 0;
}

/**
 * Starts recording (nested calls count; pair each with `stopProfiling`; the outermost call picks
 * the timer). `cpu` replays each dispatch alone and times it from submit to done even where the
 * adapter has timestamp queries.
 */
export function startProfiling(how: ProfileTiming = "auto"): void {
  if (depth++ === 0) timing = how;
}

/** The sequence number the next dispatch will get (a mark for `profileReport`). */
export function profileMark(): number {
  return issued;
}

/** Whether this profile reads GPU timestamps (else the cpu timer captures dispatches to replay). */
export function profileUsesTimestamps(): boolean {
  const { timestamps, software } = deviceInfo();
  return timestamps && (timing === "timestamp-query" || (timing === "auto" && !software));
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

/**
 * Runs `fn` with every dispatch it issues attributed to `op` (the backward pass wraps each
 * node's rule, so the products and sums inside a conv2d's backward count as conv2d).
 */
export function inOp<T>(op: string, fn: () => T): T {
  if (depth === 0) return fn();
  const prev = context;
  context = op;
  try {
    return fn();
  } finally {
    context = prev;
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
 * pass, or undefined when the `cpu` timer keeps the capture for a replay.
 */
export function profileDispatch(
  kernel: string,
  variant: string,
  work: { bytes: number; flops: number },
  capture: ReplayCapture,
): GPUComputePassTimestampWrites | undefined {
  const rec: Pending = {
    command: "dispatch",
    kernel: variant ? `${kernel} ${variant}` : kernel,
    shape: shapeClass(work.bytes),
    op: context,
    phase,
    flops: work.flops,
    bytes: work.bytes,
    seq: issued++,
  };
  unlabeled.push(rec);
  if (!profileUsesTimestamps()) {
    rec.capture = capture;
    captured.push(rec);
    return undefined;
  }
  pending.push(rec);
  querySet ??= deviceInfo().device.createQuerySet({ type: "timestamp", count: MAX_QUERIES });
  const i = pending.length - 1;
  return { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
}

/**
 * Called by the runtime for each copy command while profiling: the `cpu` timer replays it like a
 * dispatch; `timestamp-query` cannot time a copy (only passes take timestamps), so it is not
 * recorded there. `bytes` counts what it reads and writes.
 */
export function profileCopy(kernel: string, bytes: number, capture: CopyCapture): void {
  if (profileUsesTimestamps()) return;
  const rec: Pending = {
    command: "copy",
    kernel,
    shape: shapeClass(bytes),
    op: context,
    phase,
    flops: 0,
    bytes,
    seq: issued++,
    copy: capture,
  };
  unlabeled.push(rec);
  captured.push(rec);
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
  return pending.length === 0 && inflight.length === 0 && captured.length === 0;
}

/**
 * Waits for every submitted batch's timings to come back, and replays the dispatches the `cpu`
 * timer captured (call it once their work has been submitted).
 */
export async function profileSettled(): Promise<void> {
  while (inflight.length > 0) {
    const now = [...inflight];
    await Promise.all(now);
    inflight = inflight.filter((p) => !now.includes(p));
  }
  if (captured.length > 0) {
    const batch = captured;
    captured = [];
    await replay(batch);
  }
}

async function submitDone(device: GPUDevice, e: GPUCommandEncoder | null): Promise<number> {
  const t0 = performance.now();
  device.queue.submit(e ? [e.finish()] : []);
  await device.queue.onSubmittedWorkDone();
  return performance.now() - t0;
}

function medianOf(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[s.length >> 1] ?? 0;
}

const pipelineIds = new WeakMap<GPUComputePipeline, number>();
let nextPipelineId = 0;

function replayKey(c: ReplayCapture): string {
  let id = pipelineIds.get(c.pipeline);
  if (id === undefined) pipelineIds.set(c.pipeline, id = nextPipelineId++);
  const res = c.resources.map((r) => "buffer" in r ? r.size : `${r.width}x${r.height}`);
  const u = c.uniform ? [...new Uint32Array(c.uniform)].join(",") : "";
  return `${id}|${res.join(",")}|${u}|${c.groups.join(",")}`;
}

/** Times one capture: `reps` copies in one submit, minus the empty-submit latency. */
async function timeCapture(
  device: GPUDevice,
  c: ReplayCapture,
  reps: number,
  latency: number,
): Promise<number> {
  const scratch: (GPUBuffer | GPUTexture)[] = [];
  const entries: GPUBindGroupEntry[] = c.resources.map((r, binding) => {
    const write = c.writes.includes(binding);
    if ("buffer" in r) {
      const size = Math.ceil(r.size / 4) * 4;
      if (!write) return { binding, resource: { buffer: r.buffer, offset: r.offset ?? 0, size } };
      const b = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE });
      scratch.push(b);
      return { binding, resource: { buffer: b, size } };
    }
    if (!write) return { binding, resource: r.createView() };
    const t = device.createTexture({
      size: [r.width, r.height],
      format: r.format,
      usage: GPUTextureUsage.STORAGE_BINDING,
    });
    scratch.push(t);
    return { binding, resource: t.createView() };
  });
  if (c.uniform) {
    const u = device.createBuffer({
      size: c.uniform.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(u, 0, c.uniform);
    scratch.push(u);
    entries.push({ binding: c.resources.length, resource: { buffer: u } });
  }
  const bg = device.createBindGroup({ layout: c.pipeline.getBindGroupLayout(0), entries });
  const e = device.createCommandEncoder();
  const pass = e.beginComputePass();
  pass.setPipeline(c.pipeline);
  pass.setBindGroup(0, bg);
  for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(...c.groups);
  pass.end();
  const ms = await submitDone(device, e);
  for (const s of scratch) s.destroy();
  return Math.max(0, ms - latency) / reps;
}

/** Times one copy capture: `reps` copies in one submit, minus the empty-submit latency. */
async function timeCopy(
  device: GPUDevice,
  c: CopyCapture,
  reps: number,
  latency: number,
): Promise<number> {
  const e = device.createCommandEncoder();
  const scratch = c.encode(device, e, reps);
  const ms = await submitDone(device, e);
  for (const s of scratch) s.destroy();
  return Math.max(0, ms - latency) / reps;
}

/** The `cpu` timer: replays each distinct captured dispatch or copy alone and times it. */
async function replay(batch: Pending[]): Promise<void> {
  const { device } = deviceInfo();
  const idle: number[] = [];
  for (let i = 0; i < 5; i++) idle.push(await submitDone(device, null));
  const latency = medianOf(idle);
  const times = new Map<string, number>();
  let clock = done.reduce((a, r) => Math.max(a, r.endMs), 0);
  for (const p of batch) {
    const c = p.capture, copy = p.copy;
    const key = copy ? `copy|${copy.key}` : replayKey(c!);
    const time = (reps: number) =>
      copy ? timeCopy(device, copy, reps, latency) : timeCapture(device, c!, reps, latency);
    let ms = times.get(key);
    if (ms === undefined) {
      ms = await time(1);
      // repeat short commands until they outlast the latency several times over
      const reps = Math.min(64, Math.ceil((4 * latency) / Math.max(ms, 0.01)));
      if (reps > 1) ms = await time(reps);
      times.set(key, ms);
    }
    delete p.capture;
    delete p.copy;
    finish(p, clock, clock + ms);
    clock += ms;
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
    `Profile (${report.source}): ${dispatchesOf(report)} dispatches${copiesNote(report)}, ` +
    `${report.totalMs.toFixed(1)} ms of GPU time`,
    fmtRows("kernel", report.byKernel, limit),
    fmtRows("op", report.byOp, limit),
    fmtRows("phase", report.byPhase, limit),
  ].join("\n\n");
}

function dispatchesOf(report: ProfileReport): number {
  return report.records.filter((r) => r.command === "dispatch").length;
}

function copiesNote(report: ProfileReport): string {
  const n = report.records.length - dispatchesOf(report);
  return n > 0 ? ` and ${n} copies` : "";
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
