/**
 * The one WGSL builder: it emits the bindings, the params struct, `enable f16;` when a binding
 * stores f16, per-binding load/store helpers and the entry point, so each kernel holds only its
 * body. Every buffer binding `x` gets `ld_x(i: u32) -> f32` and (when writable) `st_x(i, v)`, so a
 * kernel body is written once in f32 and serves f32 and f16 storage alike.
 *
 * @module
 */

/** Element types a tensor buffer can store. */
export type StorageType = "f32" | "f16";

/** Scalar types a params field can have. */
export type ParamType = "u32" | "i32" | "f32";

/** One binding of a kernel, in binding order. */
export interface BindingSpec {
  /** The WGSL variable name. */
  name: string;
  /** `buffer` (default), a read-only `rgba32float` storage texture, or a write-only one. */
  kind?: "buffer" | "texture_read" | "texture_write";
  /** Storage type of a buffer binding (default `f32`); `u32` for index buffers; `vec4<f32>`
   * for 16-byte loads (no helpers are emitted for it). */
  type?: StorageType | "u32" | "vec4<f32>";
  /** Whether a buffer binding is written (default read-only). */
  write?: boolean;
}

/**
 * A row-major f32 input read 16 bytes at a time, either from a storage buffer of vec4s or (`tex`)
 * from a read-only texture holding one row per texel row: its binding, and the WGSL expression of
 * vec4 `index` of the row (the body defines `row`, and `base` = the row's first vec4).
 *
 * @example
 * ```ts
 * import { rowInput } from "./builder.ts";
 * console.log(rowInput("x", true)[1]); // textureLoad(x, vec2<u32>(j, row))
 * ```
 */
export function rowInput(name: string, tex: boolean, index = "j"): [BindingSpec, string] {
  return tex
    ? [{ name, kind: "texture_read" }, `textureLoad(${name}, vec2<u32>(${index}, row))`]
    : [{ name, type: "vec4<f32>" }, `${name}[base + ${index}]`];
}

/** A kernel description: bindings, uniform params, workgroup size and the body of `main`. */
export interface KernelSpec {
  /** Short name, used in error messages and as a comment in the source. */
  name: string;
  /** Bindings in order; the params uniform (if any) comes after them. */
  bindings: BindingSpec[];
  /** Uniform params, each a 4-byte scalar, in order. */
  params?: [string, ParamType][];
  /** Workgroup size; x should be a multiple of 8 (software adapters pack lanes along x). */
  workgroup: [number, number?, number?];
  /** Module-scope declarations: helper functions, `var<workgroup>` arrays. */
  prelude?: string;
  /** The body of `main`. In scope: `gid`, `lid`, `wid`, `nwg` (the usual builtins) and `P`. */
  body: string;
}

/** A built kernel: its WGSL source and its params layout. */
export interface BuiltKernel {
  /** Short name, used in error messages and profiles. */
  name: string;
  /** The WGSL source. */
  code: string;
  /** Uniform params, each a 4-byte scalar, in order. */
  params: [string, ParamType][];
  /** Storage bindings, in binding order. */
  bindings: BindingSpec[];
}

function helpers(b: BindingSpec): string {
  const t = b.type ?? "f32";
  if (t === "u32" || t === "vec4<f32>") return "";
  const load = t === "f32"
    ? `fn ld_${b.name}(idx_: u32) -> f32 { return ${b.name}[idx_]; }\n`
    : `fn ld_${b.name}(idx_: u32) -> f32 { return f32(${b.name}[idx_]); }\n`;
  const store = !b.write
    ? ""
    : t === "f32"
    ? `fn st_${b.name}(idx_: u32, val_: f32) { ${b.name}[idx_] = val_; }\n`
    : `fn st_${b.name}(idx_: u32, val_: f32) { ${b.name}[idx_] = f16(val_); }\n`;
  return load + store;
}

function bindingDecl(b: BindingSpec, i: number): string {
  const kind = b.kind ?? "buffer";
  if (kind === "texture_read") {
    return `@group(0) @binding(${i}) var ${b.name}: texture_storage_2d<rgba32float, read>;`;
  }
  if (kind === "texture_write") {
    return `@group(0) @binding(${i}) var ${b.name}: texture_storage_2d<rgba32float, write>;`;
  }
  const access = b.write ? "read_write" : "read";
  return `@group(0) @binding(${i}) var<storage, ${access}> ${b.name}: array<${b.type ?? "f32"}>;`;
}

/**
 * Builds the WGSL source of a kernel.
 *
 * @example
 * ```ts
 * import { buildKernel } from "./builder.ts";
 * const k = buildKernel({
 *   name: "scale",
 *   bindings: [{ name: "x" }, { name: "y", write: true }],
 *   params: [["n", "u32"], ["s", "f32"]],
 *   workgroup: [64],
 *   body: "let i = gid.x; if (i < P.n) { st_y(i, ld_x(i) * P.s); }",
 * });
 * console.log(k.code.includes("fn main"));
 * ```
 */
export function buildKernel(spec: KernelSpec): BuiltKernel {
  const params = spec.params ?? [];
  const f16 = spec.bindings.some((b) => b.type === "f16");
  const lines: string[] = [`// kernel: ${spec.name}`];
  if (f16) lines.push("enable f16;");
  spec.bindings.forEach((b, i) => lines.push(bindingDecl(b, i)));
  if (params.length > 0) {
    lines.push(`struct Params { ${params.map(([n, t]) => `${n}: ${t},`).join(" ")} }`);
    lines.push(`@group(0) @binding(${spec.bindings.length}) var<uniform> P: Params;`);
  }
  for (const b of spec.bindings) if ((b.kind ?? "buffer") === "buffer") lines.push(helpers(b));
  if (spec.prelude) lines.push(spec.prelude);
  const [x, y = 1, z = 1] = spec.workgroup;
  lines.push(`@compute @workgroup_size(${x}, ${y}, ${z})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
${spec.body}
}`);
  return { name: spec.name, code: lines.join("\n"), params, bindings: spec.bindings };
}

/**
 * WGSL expression for the flat index of a 1-D launch that was spread over x and y (dispatch sizes
 * are capped at 65535 per dimension). Pair it with `grid1d` on the host.
 */
export function flatIndex(workgroupX: number): string {
  return `(gid.x + gid.y * nwg.x * ${workgroupX}u)`;
}

const memo = new Map<string, BuiltKernel>();

/** Returns the kernel stored under `key`, building it once. */
export function cachedKernel(key: string, make: () => BuiltKernel): BuiltKernel {
  let k = memo.get(key);
  if (!k) memo.set(key, k = make());
  return k;
}
