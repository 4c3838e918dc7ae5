/**
 * A small module system: `Parameter` (a replaceable tensor with a trainable flag), `Module`
 * (named children, parameters and buffers whose dotted paths are diffusers' state-dict keys,
 * e.g. `down_blocks.0.resnets.0.conv1.weight`) and `ModuleList`.
 *
 * Children are replaceable in place (`setChild`), which is how adapters wrap a layer. For a
 * replacement to take effect, a layer reaches its children through the registry, e.g. with a
 * getter: `get to_q(): Linear { return this.child("to_q"); }`, never through a field that
 * captured the original child.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { untrack } from "../ops/scope.ts";
import { cachePacksOf } from "../ops/pack_cache.ts";
import { copy } from "../ops/creation.ts";
import { cast } from "../ops/cast.ts";
import { noGrad } from "../ops/autograd.ts";
import { ArgumentError, fmtShape, ShapeError } from "../ops/errors.ts";
import { StateDictError } from "./errors.ts";
import { loadTensor, type SafetensorsReader } from "./safetensors.ts";

/** Options of {@link Parameter}. */
export interface ParameterOptions {
  /** Whether the optimizer updates it and gradients flow to it (default true). */
  trainable?: boolean;
}

/**
 * A named tensor slot of a module. The tensor can be replaced (`assign`, e.g. when loading
 * weights) while optimizers and adapters keep the same `Parameter`. `trainable` drives the
 * tensor's `requiresGrad`, so frozen weights get no gradient buffers. On software adapters the
 * matmul keeps the packed layout of a parameter until it is written (see `cachePacksOf`).
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/device.ts";
 * import { zeros } from "../ops/creation.ts";
 * import { Parameter } from "./module.ts";
 * await getDevice();
 * const p = new Parameter(zeros([2, 3]));
 * p.trainable = false;
 * console.log(p.value.requiresGrad); // false
 * ```
 */
export class Parameter {
  #value: Tensor;
  #trainable: boolean;

  /** Takes ownership of `value` (it is removed from every open `scope`). */
  constructor(value: Tensor, options: ParameterOptions = {}) {
    this.#trainable = options.trainable ?? true;
    this.#value = value;
    untrack(value);
    cachePacksOf(value);
    value.requiresGrad = this.#trainable;
  }

  /** The current tensor. */
  get value(): Tensor {
    return this.#value;
  }

  /** Shape of the tensor. */
  get shape(): readonly number[] {
    return this.#value.shape;
  }

  /** Gradient accumulated by the last backward pass, if any. */
  get grad(): Tensor | null {
    return this.#value.grad;
  }

  /** Whether the parameter is trained (its tensor requires a gradient). */
  get trainable(): boolean {
    return this.#trainable;
  }

  set trainable(on: boolean) {
    this.#trainable = on;
    this.#value.requiresGrad = on;
  }

  /** Drops the accumulated gradient. */
  zeroGrad(): void {
    this.#value.grad?.dispose();
    this.#value.grad = null;
  }

  /**
   * Replaces the tensor, adopting `value` (no copy) and disposing the previous one. The shape
   * must stay the same; the dtype may change (e.g. an f16 frozen base weight).
   */
  assign(value: Tensor): void {
    if (value === this.#value) return;
    if (
      value.shape.length !== this.#value.shape.length ||
      value.shape.some((d, i) => d !== this.#value.shape[i])
    ) {
      throw new ShapeError(
        `Cannot assign a tensor of shape ${fmtShape(value.shape)} to a parameter of shape ` +
          `${fmtShape(this.#value.shape)}; pass a tensor of the parameter's shape`,
      );
    }
    untrack(value);
    cachePacksOf(value);
    value.requiresGrad = this.#trainable;
    this.zeroGrad();
    this.#value.dispose();
    this.#value = value;
  }

  /** Frees the tensor and its gradient. */
  dispose(): void {
    this.zeroGrad();
    this.#value.dispose();
  }
}

/** Options of {@link Module.loadStateDict} and {@link Module.loadSafetensors}. */
export interface LoadStateDictOptions {
  /** Throw on missing or unexpected keys (default true). Shape mismatches always throw. */
  strict?: boolean;
}

/** Keys a non-strict load skipped. */
export interface LoadResult {
  /** Module keys the source lacked (their parameters keep their values). */
  missing: string[];
  /** Source keys the module does not have (ignored). */
  unexpected: string[];
}

function listKeys(keys: readonly string[], n = 3): string {
  const shown = keys.slice(0, n).map((k) => `"${k}"`).join(", ");
  return keys.length > n ? `${shown}, ...` : shown;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Base class of every layer and model. Register parameters, buffers and children under the
 * names diffusers uses, so `stateDict()` keys equal the checkpoint's.
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/device.ts";
 * import { zeros } from "../ops/creation.ts";
 * import { Module, ModuleList } from "./module.ts";
 * await getDevice();
 * class Affine extends Module {
 *   constructor(n: number) {
 *     super();
 *     this.addParameter("weight", zeros([n]));
 *     this.addParameter("bias", zeros([n]));
 *   }
 * }
 * const net = new Module();
 * net.addModule("layers", new ModuleList([new Affine(2), new Affine(2)]));
 * console.log([...net.stateDict().keys()]); // ["layers.0.weight", "layers.0.bias", ...]
 * net.dispose();
 * ```
 */
export class Module {
  #children = new Map<string, Module>();
  #params = new Map<string, Parameter>();
  #buffers = new Map<string, Parameter>();
  #training = true;

  #checkName(name: string): void {
    if (name === "" || name.includes(".")) {
      throw new ArgumentError(
        `"${name}" cannot name a parameter, buffer or child of ${this.constructor.name}; ` +
          "use a non-empty name without dots",
      );
    }
    if (this.#children.has(name) || this.#params.has(name) || this.#buffers.has(name)) {
      throw new ArgumentError(
        `${this.constructor.name} already has a member named "${name}"; pick another name, ` +
          "or use setChild to replace a child",
      );
    }
  }

  /** Registers a trainable (by default) parameter, adopting `value`. */
  addParameter(name: string, value: Tensor, options: ParameterOptions = {}): Parameter {
    this.#checkName(name);
    const p = new Parameter(value, options);
    this.#params.set(name, p);
    return p;
  }

  /** Registers a buffer: state saved in the state dict but never trained (e.g. running means). */
  addBuffer(name: string, value: Tensor): Parameter {
    this.#checkName(name);
    const p = new Parameter(value, { trainable: false });
    this.#buffers.set(name, p);
    return p;
  }

  /** Registers a child module and returns it. */
  addModule<T extends Module>(name: string, module: T): T {
    this.#checkName(name);
    this.#children.set(name, module);
    return module;
  }

  /** The parameter registered here under `name` (throws when there is none). */
  param(name: string): Parameter {
    const p = this.#params.get(name) ?? this.#buffers.get(name);
    if (!p) {
      throw new ArgumentError(
        `${this.constructor.name} has no parameter or buffer "${name}"; it has ` +
          `${listKeys([...this.#params.keys(), ...this.#buffers.keys()], 8) || "none"}`,
      );
    }
    return p;
  }

  /** The child at a dotted path (e.g. `down_blocks.0.resnets.0`), or undefined. */
  getChild(path: string): Module | undefined {
    const [first, ...rest] = path.split(".");
    let m = this.#children.get(first!);
    for (const part of rest) {
      if (!m) return undefined;
      m = m.#children.get(part);
    }
    return m;
  }

  /** The child at a dotted path, typed for use in `forward`; throws when it is missing. */
  child<T extends Module = Module>(path: string): T {
    const m = this.getChild(path);
    if (!m) {
      throw new ArgumentError(
        `${this.constructor.name} has no child "${path}"; it has ` +
          `${listKeys([...this.#children.keys()], 8) || "none"}`,
      );
    }
    return m as T;
  }

  /**
   * Replaces the existing child at a dotted path with `module` (same name, so state-dict paths
   * keep their prefix) and returns the old child, which is not disposed (an adapter usually
   * wraps it).
   */
  setChild(path: string, module: Module): Module {
    const dot = path.lastIndexOf(".");
    const parent = dot < 0 ? this : this.getChild(path.slice(0, dot));
    const name = path.slice(dot + 1);
    const old = parent ? parent.#children.get(name) : undefined;
    if (!parent || !old) {
      throw new ArgumentError(
        `${this.constructor.name} has no child "${path}" to replace; use addModule to add a ` +
          "new child, or check the path",
      );
    }
    parent.#children.set(name, module);
    return old;
  }

  /** Direct children with their names, in registration order. */
  children(): [string, Module][] {
    return [...this.#children];
  }

  /** This module (path "") and every descendant with its dotted path, parents first. */
  namedModules(prefix = ""): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, c] of this.#children) {
      out.push(...c.namedModules(prefix ? `${prefix}.${name}` : name));
    }
    return out;
  }

  /** Every parameter (not buffers) with its dotted path: own first, then children's. */
  namedParameters(prefix = ""): [string, Parameter][] {
    return this.#named(prefix, (m) => m.#params);
  }

  /** Every buffer with its dotted path. */
  namedBuffers(prefix = ""): [string, Parameter][] {
    return this.#named(prefix, (m) => m.#buffers);
  }

  #named(prefix: string, pick: (m: Module) => Map<string, Parameter>): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, p] of pick(m)) out.push([path ? `${path}.${name}` : name, p]);
    }
    return out;
  }

  /** Every parameter, each once (shared parameters are not repeated). */
  parameters(): Parameter[] {
    return [...new Set(this.namedParameters().map(([, p]) => p))];
  }

  /** The parameters an optimizer should update. */
  trainableParameters(): Parameter[] {
    return this.parameters().filter((p) => p.trainable);
  }

  /** Parameters and buffers by dotted path (the tensors themselves, not copies). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [path, m] of this.namedModules()) {
      for (const [name, p] of [...m.#params, ...m.#buffers]) {
        out.set(path ? `${path}.${name}` : name, p.value);
      }
    }
    return out;
  }

  #slots(): Map<string, Parameter> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  #check(
    slots: Map<string, Parameter>,
    shapes: Map<string, readonly number[]>,
    strict: boolean,
    source: string,
  ): LoadResult {
    const missing = [...slots.keys()].filter((k) => !shapes.has(k));
    const unexpected = [...shapes.keys()].filter((k) => !slots.has(k));
    const mismatched: string[] = [];
    for (const [k, shape] of shapes) {
      const p = slots.get(k);
      if (p && !sameShape(p.shape, shape)) {
        mismatched.push(`"${k}" is ${fmtShape(p.shape)} here but ${fmtShape(shape)} there`);
      }
    }
    const problems: string[] = [];
    if (strict && missing.length) {
      problems.push(`${missing.length} missing keys (${listKeys(missing)})`);
    }
    if (strict && unexpected.length) {
      problems.push(`${unexpected.length} unexpected keys (${listKeys(unexpected)})`);
    }
    if (mismatched.length) {
      problems.push(
        `${mismatched.length} shape mismatches (${mismatched.slice(0, 3).join("; ")}` +
          `${mismatched.length > 3 ? "; ..." : ""})`,
      );
    }
    if (problems.length) {
      throw new StateDictError(
        `Cannot load ${source} into ${this.constructor.name}: ${problems.join(", ")}; nothing ` +
          "was loaded, so check that the weights match the model config" +
          (mismatched.length ? "" : ", or pass { strict: false } to skip those keys"),
      );
    }
    return { missing, unexpected };
  }

  /**
   * Loads tensors by dotted path. Everything is checked before anything changes; by default
   * each tensor is copied, so the caller keeps ownership of `state` (`copy: false` adopts the
   * tensors instead; the module then frees them). Each parameter keeps its dtype (an f16 base
   * weight stays f16), casting a tensor of another dtype. Throws {@link StateDictError} listing missing
   * and unexpected keys (strict mode) and shape mismatches (always).
   */
  loadStateDict(
    state: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
    options: LoadStateDictOptions & { copy?: boolean } = {},
  ): LoadResult {
    const entries: [string, Tensor][] = state instanceof Map
      ? [...state]
      : Object.entries(state as Record<string, Tensor>);
    const slots = this.#slots();
    const result = this.#check(
      slots,
      new Map(entries.map(([k, t]) => [k, t.shape])),
      options.strict ?? true,
      "the state dict",
    );
    for (const [k, t] of entries) {
      const p = slots.get(k);
      if (!p) continue;
      const d = p.value.dtype;
      if (t.dtype === d) p.assign(options.copy === false ? t : copy(t));
      else {
        p.assign(noGrad(() => cast(t, d)));
        if (options.copy === false) t.dispose();
      }
    }
    return result;
  }

  /**
   * Loads parameters from a safetensors reader, one tensor at a time; keys and shapes are
   * checked from the header before any data is read. Each tensor keeps its parameter's current
   * GPU dtype.
   *
   * @example
   * ```ts
   * import { getDevice } from "../ops/device.ts";
   * import { zeros } from "../ops/creation.ts";
   * import { Module } from "./module.ts";
   * import { SafetensorsReader, serializeSafetensors } from "./safetensors.ts";
   * await getDevice();
   * const m = new Module();
   * m.addParameter("weight", zeros([2]));
   * const bytes = serializeSafetensors({ weight: { data: new Float32Array([1, 2]), shape: [2] } });
   * using file = await SafetensorsReader.fromBytes(bytes);
   * await m.loadSafetensors(file);
   * console.log(await m.param("weight").value.toArray()); // [1, 2]
   * ```
   */
  async loadSafetensors(
    file: SafetensorsReader,
    options: LoadStateDictOptions = {},
  ): Promise<LoadResult> {
    const slots = this.#slots();
    const result = this.#check(
      slots,
      new Map(file.keys.map((k) => [k, file.info(k).shape])),
      options.strict ?? true,
      `"${file.name}"`,
    );
    for (const [k, p] of slots) {
      if (!file.has(k)) continue;
      p.assign(await loadTensor(file, k, { dtype: p.value.dtype }));
    }
    return result;
  }

  /** Marks every parameter frozen (no gradients, not updated). Buffers are unaffected. */
  freeze(): this {
    for (const p of this.parameters()) p.trainable = false;
    return this;
  }

  /** Marks every parameter trainable. */
  unfreeze(): this {
    for (const p of this.parameters()) p.trainable = true;
    return this;
  }

  /** Whether the module is in training mode (dropout, batch-norm statistics). */
  get training(): boolean {
    return this.#training;
  }

  /** Sets training mode on this module and every descendant. */
  train(on = true): this {
    for (const [, m] of this.namedModules()) m.#training = on;
    return this;
  }

  /** Inference mode: `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter and buffer of this module and its descendants. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const p of [...m.#params.values(), ...m.#buffers.values()]) p.dispose();
    }
  }

  /** `using m = ...` support. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * An indexed list of modules, named `0`, `1`, ... (diffusers' `down_blocks.0`, `resnets.1`).
 *
 * @example
 * ```ts
 * import { Module, ModuleList } from "./module.ts";
 * const list = new ModuleList([new Module(), new Module()]);
 * console.log(list.length, list.children().map(([name]) => name)); // 2 ["0", "1"]
 * ```
 */
export class ModuleList<T extends Module = Module> extends Module implements Iterable<T> {
  #length = 0;

  /** Registers `modules` under `0`, `1`, ... */
  constructor(modules: Iterable<T> = []) {
    super();
    for (const m of modules) this.push(m);
  }

  /** Appends a module under the next index and returns it. */
  push(module: T): T {
    return this.addModule(String(this.#length++), module);
  }

  /** Number of modules. */
  get length(): number {
    return this.#length;
  }

  /** The module at `index` (after any `setChild` replacement). */
  at(index: number): T {
    return this.child<T>(String(index));
  }

  /** Iterates the modules in index order. */
  *[Symbol.iterator](): Iterator<T> {
    for (let i = 0; i < this.#length; i++) yield this.at(i);
  }
}
