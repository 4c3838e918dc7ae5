/**
 * Batched command encoding: every dispatch goes into the current encoder's open compute pass;
 * work is submitted every `FLUSH_EVERY` dispatches and at sync points (readback, `flush()`).
 *
 * @module
 */
import type { BuiltKernel } from "../wgsl/builder.ts";
import { deviceInfo, throwDeviceError } from "./device.ts";
import { acquireBuffer, endQuarantine, releaseBuffer } from "./pool.ts";
import { pipelineFor } from "./pipeline.ts";
import { forgetPacks } from "./pack_cache.ts";
import { LimitError } from "./errors.ts";
import {
  profileBatchFull,
  profileBeforeSubmit,
  profileCopy,
  profileDispatch,
  profileUsesTimestamps,
  profiling,
} from "./profiler.ts";

const FLUSH_EVERY = 256;

let encoder: GPUCommandEncoder | null = null;
let pass: GPUComputePassEncoder | null = null;
let queued = 0;
let dispatches = 0;
let uniforms: GPUBuffer[] = [];

function currentEncoder(): GPUCommandEncoder {
  encoder ??= deviceInfo().device.createCommandEncoder();
  return encoder;
}

/** The encoder with no compute pass open, for copies. */
export function copyEncoder(): GPUCommandEncoder {
  const e = currentEncoder();
  if (pass) {
    pass.end();
    pass = null;
  }
  return e;
}

/** Where a buffer-to-texture copy reads (`copyBufferToTexture`'s source). */
export type CopySource = Parameters<GPUCommandEncoder["copyBufferToTexture"]>[0];
/** Where it writes (`copyBufferToTexture`'s destination). */
export type CopyTarget = Parameters<GPUCommandEncoder["copyBufferToTexture"]>[1];

/**
 * Records a copy of `width` x `height` texels from a buffer into a texture (the profiler times
 * it with the `cpu` timer as `copy_to_texture`).
 */
export function copyToTexture(
  src: CopySource,
  dst: CopyTarget,
  width: number,
  height: number,
): void {
  copyEncoder().copyBufferToTexture(src, dst, [width, height]);
  if (!profiling()) return;
  const tex = dst.texture;
  profileCopy("copy_to_texture", 2 * width * height * 16, {
    key: `texture ${width}x${height} ${src.bytesPerRow} ${tex.width}x${tex.height}`,
    encode: (device, e, reps) => {
      const t = device.createTexture({
        size: [tex.width, tex.height],
        format: tex.format,
        usage: GPUTextureUsage.COPY_DST,
      });
      for (let i = 0; i < reps; i++) {
        e.copyBufferToTexture(src, { ...dst, texture: t }, [width, height]);
      }
      return [t];
    },
  });
}

/** Records a copy of `bytes` bytes between buffers (timed as `copy_buffer` by the `cpu` timer). */
export function copyBuffer(
  src: GPUBuffer,
  srcOffset: number,
  dst: GPUBuffer,
  dstOffset: number,
  bytes: number,
): void {
  forgetPacks(dst); // a write drops the destination's packs, as a kernel's does
  copyEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  if (!profiling()) return;
  profileCopy("copy_buffer", 2 * bytes, {
    key: `buffer ${bytes}`,
    encode: (device, e, reps) => {
      const b = device.createBuffer({ size: bytes, usage: GPUBufferUsage.COPY_DST });
      for (let i = 0; i < reps; i++) e.copyBufferToBuffer(src, srcOffset, b, 0, bytes);
      return [b];
    },
  });
}

/** Submits every queued command and recycles the buffers released meanwhile. */
export function flush(): void {
  if (encoder) {
    if (pass) pass.end();
    const timed = profileBeforeSubmit(encoder);
    deviceInfo().device.queue.submit([encoder.finish()]);
    timed?.();
    encoder = null;
    pass = null;
    queued = 0;
  }
  for (const u of uniforms) releaseBuffer(u, true);
  uniforms = [];
  endQuarantine();
}

/** Total dispatches recorded since start (a counter for tests and benches). */
export function dispatchCount(): number {
  return dispatches;
}

/** A resource bound to a kernel: a buffer range or a storage texture. */
export type Resource = { buffer: GPUBuffer; size: number; offset?: number } | GPUTexture;

/** Splits `n` workgroups over x and y (each dimension is capped at 65535). */
export function grid1d(n: number): [number, number] {
  const max = deviceInfo().limits.maxComputeWorkgroupsPerDimension;
  if (n <= max) return [Math.max(1, n), 1];
  const y = Math.ceil(n / max);
  if (y > max) {
    throw new LimitError(`A launch of ${n} workgroups is larger than the adapter allows`);
  }
  return [Math.ceil(n / y), y];
}

function packParams(k: BuiltKernel, values: readonly number[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(k.params.length / 4) * 16));
  const u = new Uint32Array(buf);
  const i = new Int32Array(buf);
  const f = new Float32Array(buf);
  k.params.forEach(([, t], j) => {
    const v = values[j] ?? 0;
    if (t === "u32") u[j] = v;
    else if (t === "i32") i[j] = v;
    else f[j] = v;
  });
  return buf;
}

function variantOf(k: BuiltKernel): string {
  return k.bindings.some((b) => b.type === "f16") ? "f16" : "";
}

function boundBytes(resources: readonly Resource[]): number {
  let n = 0;
  for (const r of resources) if ("buffer" in r) n += r.size;
  return n;
}

/**
 * Records one dispatch of a kernel: resources in binding order, params values in the kernel's
 * params order, the workgroup counts, and (for the profiler) its floating-point operations when
 * the op knows them.
 */
export function dispatch(
  k: BuiltKernel,
  resources: readonly Resource[],
  params: readonly number[],
  groups: readonly [number, number?, number?],
  flops = 0,
): void {
  const { device, limits } = deviceInfo();
  const entries: GPUBindGroupEntry[] = resources.map((r, binding) => {
    if ("buffer" in r) {
      if (r.size > limits.maxStorageBufferBindingSize) {
        throw new LimitError(
          `Kernel ${k.name} binds ${r.size} bytes at binding ${binding}, over this adapter's ` +
            `${limits.maxStorageBufferBindingSize}-byte limit per storage binding`,
        );
      }
      if (k.bindings[binding]?.write) forgetPacks(r.buffer);
      return {
        binding,
        resource: { buffer: r.buffer, offset: r.offset ?? 0, size: Math.ceil(r.size / 4) * 4 },
      };
    }
    return { binding, resource: r.createView() };
  });
  const data = k.params.length > 0 ? packParams(k, params) : null;
  if (data) {
    const u = acquireBuffer(data.byteLength, true);
    device.queue.writeBuffer(u, 0, data);
    uniforms.push(u);
    entries.push({ binding: resources.length, resource: { buffer: u, size: data.byteLength } });
  }
  const pipeline = pipelineFor(k.code);
  const bg = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
  const e = currentEncoder();
  const grid: [number, number, number] = [groups[0], groups[1] ?? 1, groups[2] ?? 1];
  const timed = profiling() && profileUsesTimestamps();
  if (profiling()) {
    const work = { bytes: boundBytes(resources), flops };
    const writes = k.bindings.flatMap((b, i) => b.write || b.kind === "texture_write" ? [i] : []);
    const timestampWrites = profileDispatch(k.name, variantOf(k), work, {
      pipeline,
      resources,
      writes,
      uniform: data,
      groups: grid,
    });
    if (timestampWrites) {
      // one pass per dispatch, so that its timestamps time it alone
      if (pass) pass.end();
      pass = e.beginComputePass({ timestampWrites });
    }
  }
  pass ??= e.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bg);
  pass.dispatchWorkgroups(...grid);
  dispatches++;
  if (timed) {
    pass.end();
    pass = null;
    if (profileBatchFull()) return void (++queued, flush());
  }
  if (++queued >= FLUSH_EVERY) flush();
}

/** Copies `bytes` bytes of a GPU buffer back to the CPU (a sync point). */
export async function readBuffer(src: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
  const { device } = deviceInfo();
  const size = Math.ceil(bytes / 4) * 4;
  const staging = device.createBuffer({
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  copyEncoder().copyBufferToBuffer(src, offset, staging, 0, size);
  flush();
  try {
    await staging.mapAsync(GPUMapMode.READ);
    return staging.getMappedRange().slice(0, bytes);
  } finally {
    staging.destroy();
    throwDeviceError();
  }
}

/** Waits until the GPU has finished everything submitted so far (a sync point). */
export async function sync(): Promise<void> {
  flush();
  await deviceInfo().device.queue.onSubmittedWorkDone();
  throwDeviceError();
}
