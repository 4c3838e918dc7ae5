/**
 * AdaBN (Li et al., 2016): re-estimates every BatchNorm2d's statistics of a trained model on
 * target data, optionally per timestep band, before LoRA training (then frozen), during it
 * (adapting online each step), or alone. The weights never change.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { noGrad } from "../ops/autograd.ts";
import { batchNorm } from "../ops/batch_norm.ts";
import { add } from "../ops/binary.ts";
import { concat } from "../ops/concat.ts";
import { cast } from "../ops/cast.ts";
import { copy, tensor, zeros } from "../ops/creation.ts";
import { slice } from "../ops/slice.ts";
import { scale } from "../ops/unary.ts";
import { scope, untrack } from "../ops/scope.ts";
import type { Module } from "../nn/module.ts";
import { BatchNorm2d } from "../nn/layers/batch_norm.ts";
import { UNet2DConditionModel } from "../nn/unet.ts";
import { TimestepBands } from "./bands.ts";
import { AdabnError } from "./errors.ts";
import {
  batchMoments,
  channelSquaredDeviations,
  channelSum,
  mergeMoments,
  type Moments,
  valuesPerChannel,
} from "./moments.ts";
import type { AdabnMethod, AdabnMode, AdabnSnapshot } from "./snapshot.ts";

/** Options of {@link AdaBN.attach}. */
export interface AdabnOptions {
  /** Timestep band boundaries (default `[0, 1000]`: one band); see {@link TimestepBands}. */
  bands?: readonly number[];
}

/** Options of {@link AdaBN.estimate}. */
export interface EstimateOptions {
  /**
   * "exact" (default): two passes over the data, the means first, then the mean squared
   * deviation from them; the data must give the same batches twice. "online": one pass, each
   * batch merged with the merge formula.
   */
  method?: AdabnMethod;
}

/**
 * One batch of target data: runs the model's forward (after {@link AdaBN.setTimesteps} when
 * the bands need it). Tensors it creates are freed when it returns.
 */
export type AdabnBatch = (adabn: AdaBN) => unknown;

interface Layer {
  path: string;
  bn: BatchNorm2d;
  /** Statistics per band. */
  stats: Moments[];
  /** The step this layer last merged a batch in (online adaptation merges once per step). */
  mergedAt: number;
}

/** A band's first-pass sum per channel and the count it covers. */
interface Sum {
  total: Tensor;
  count: number;
}

type Collect =
  | { pass: "sum"; sums: Map<Layer, (Sum | null)[]> }
  | { pass: "deviation"; moments: Map<Layer, (Moments | null)[]> }
  | { pass: "online"; moments: Map<Layer, (Moments | null)[]> };

const keep = (m: Moments): Moments => {
  untrack(m.mean);
  untrack(m.variance);
  return m;
};
const free = (m: Moments | null | undefined): void => {
  m?.mean.dispose();
  m?.variance.dispose();
};

/**
 * AdaBN attached to a model: every BatchNorm2d's forward is taken over (a hook on the layer;
 * parameters, buffers and state-dict keys stay as they are) and normalizes with this object's
 * statistics for the band of the current timestep, in training and eval mode alike.
 *
 * Statistics are the mean and the population variance (divided by n, not n - 1) of each
 * channel's inputs over all target data: AdaBN normalizes with the target's population
 * statistics, and PyTorch's eval mode uses `running_var` as the variance itself, so
 * {@link AdaBN.commit} stores the population variance there too. While statistics are gathered
 * each batch is normalized with its own batch statistics (PyTorch's training-mode forward,
 * without touching the running buffers), so layer l sees what it sees when AdaBN is computed
 * with train-mode batch norm; the result is the exact population statistics of those inputs.
 *
 * Modes: {@link AdaBN.estimate} then train a LoRA with the statistics frozen ("before");
 * {@link AdaBN.unfreeze} so each training step merges its batch into the statistics online
 * ("during"; a step is one {@link AdaBN.setTimesteps}, so a gradient-checkpointing re-run does
 * not count twice); or estimate and sample without a LoRA ("alone"). A U-Net's own forward sets
 * the timesteps; for other models call `setTimesteps` before each forward when there are
 * several bands.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { BatchNorm2d, Module } from "../nn/mod.ts";
 * import { AdaBN } from "./adabn.ts";
 * await getDevice();
 * const model = new Module();
 * const bn = model.addModule("bn", new BatchNorm2d(3));
 * const adabn = AdaBN.attach(model);
 * adabn.estimate([() => bn.forward(randn([4, 3, 5, 5])), () => bn.forward(randn([2, 3, 5, 5]))]);
 * console.log(adabn.statistics("bn").count); // 150
 * adabn.dispose();
 * ```
 */
export class AdaBN {
  /** The timestep bands. */
  readonly bands: TimestepBands;
  #model: Module;
  #layers: Layer[];
  #timesteps: number | readonly number[] | null = null;
  #step = 0;
  #frozen = true;
  #collect: Collect | null = null;
  #method: AdabnMethod | null = null;
  #estimated = false;
  #onlineSteps = 0;
  #attached = true;

  private constructor(model: Module, layers: Layer[], bands: TimestepBands) {
    this.#model = model;
    this.#layers = layers;
    this.bands = bands;
  }

  /**
   * Hooks every BatchNorm2d of `model`. Each band starts from the layer's current running
   * statistics with a count of 0, so until data is seen the model behaves as its base in eval
   * mode. Throws {@link AdabnError} when the model has no BatchNorm2d or is already attached.
   */
  static attach(model: Module, options: AdabnOptions = {}): AdaBN {
    const bands = new TimestepBands(options.bands);
    const found = model.namedModules().filter((e): e is [string, BatchNorm2d] =>
      e[1] instanceof BatchNorm2d
    );
    if (found.length === 0) {
      throw new AdabnError(
        `${model.constructor.name} has no BatchNorm2d layer, so AdaBN has no statistics to adapt; ` +
          'build the model with norm: "batch", or use norm adapters for GroupNorm models',
      );
    }
    const roots = model instanceof UNet2DConditionModel ? [model] : [];
    const hooked = [...roots, ...found.map(([, bn]) => bn)].filter((m) =>
      Object.hasOwn(m, "forward")
    );
    if (hooked.length > 0) {
      throw new AdabnError(
        `${hooked[0]!.constructor.name} already has a forward hook (AdaBN attached twice?); ` +
          "detach the first AdaBN before attaching another",
      );
    }
    const layers = found.map(([path, bn]): Layer => ({
      path,
      bn,
      stats: Array.from({ length: bands.count }, () =>
        keep({
          mean: copy(bn.param("running_mean").value),
          variance: copy(bn.param("running_var").value),
          count: 0,
        })),
      mergedAt: -1,
    }));
    const adabn = new AdaBN(model, layers, bands);
    for (const layer of layers) {
      Object.defineProperty(layer.bn, "forward", {
        value: (x: Tensor): Tensor => adabn.#forward(layer, x),
        configurable: true,
        writable: true,
      });
    }
    if (model instanceof UNet2DConditionModel) {
      const unetForward = UNet2DConditionModel.prototype.forward;
      Object.defineProperty(model, "forward", {
        value: (sample: Tensor, t: number | ArrayLike<number>, context: Tensor): Tensor => {
          adabn.setTimesteps(t);
          return unetForward.call(model, sample, t, context);
        },
        configurable: true,
        writable: true,
      });
    }
    return adabn;
  }

  /** Module paths of the adapted BatchNorm2d layers, in model order. */
  get layers(): readonly string[] {
    return this.#layers.map((l) => l.path);
  }

  /** Whether the statistics are frozen (true) or adapt online at every step (false). */
  get frozen(): boolean {
    return this.#frozen;
  }

  /** Stops online adaptation: forwards normalize with the statistics as they are. */
  freeze(): this {
    this.#frozen = true;
    return this;
  }

  /**
   * Starts online adaptation: from now on the first forward of each step (see
   * {@link AdaBN.setTimesteps}) merges its batch into the statistics of its band, and every
   * forward normalizes with the merged statistics (which get no gradient).
   */
  unfreeze(): this {
    this.#frozen = false;
    return this;
  }

  /**
   * Sets the timestep of the next forwards (one for the batch, or one per sample) and starts a
   * new step. A U-Net's forward calls it itself.
   */
  setTimesteps(t: number | ArrayLike<number>): void {
    const list = typeof t === "number" ? t : Array.from(t);
    for (const v of typeof list === "number" ? [list] : list) this.bands.bandOf(v);
    this.#timesteps = list;
    this.#step++;
  }

  /**
   * The live statistics of a layer in a band (owned by this object; do not dispose them).
   * Throws {@link AdabnError} for an unknown path or band.
   */
  statistics(path: string, band = 0): Readonly<Moments> {
    const stats = this.#layer(path).stats[band];
    if (!stats) {
      throw new AdabnError(
        `Band ${band} does not exist; there are ${this.bands.count} bands (0..${
          this.bands.count - 1
        })`,
      );
    }
    return stats;
  }

  /**
   * Re-estimates every layer's statistics from the target batches (each band from the samples
   * whose timestep falls in it; a band without samples keeps its statistics). The statistics end
   * frozen. With the exact method the batches are run twice, so pass an array (or another
   * iterable that can be read twice) whose batches come out the same both times.
   */
  estimate(batches: Iterable<AdabnBatch>, options: EstimateOptions = {}): void {
    const method = options.method ?? "exact";
    if (method !== "exact" && method !== "online") {
      throw new AdabnError(`AdaBN estimates "exact" or "online", got "${method}"; pick one`);
    }
    if (method === "exact" && (batches[Symbol.iterator]() as unknown) === batches) {
      throw new AdabnError(
        "The exact AdaBN estimate reads the batches twice, but got a one-shot iterator; pass " +
          'an array of batches, or use method: "online"',
      );
    }
    const run = (collect: Collect): void => {
      this.#collect = collect;
      try {
        for (const batch of batches) {
          this.#timesteps = null;
          noGrad(() => scope(() => void batch(this)));
        }
      } finally {
        this.#collect = null;
      }
    };
    const moments = new Map(this.#layers.map((l) => [l, l.stats.map((): Moments | null => null)]));
    const sums = new Map(this.#layers.map((l) => [l, l.stats.map((): Sum | null => null)]));
    try {
      if (method === "online") run({ pass: "online", moments });
      else {
        run({ pass: "sum", sums });
        for (const [layer, list] of sums) {
          list.forEach((s, b) => {
            if (!s) return;
            const mean = noGrad(() => scale(s.total, 1 / s.count));
            moments.get(layer)![b] = keep({ mean, variance: zeros(mean.shape), count: s.count });
          });
        }
        run({ pass: "deviation", moments });
        for (const list of moments.values()) {
          list.forEach((m, b) => {
            if (!m) return;
            list[b] = keep({ ...m, variance: noGrad(() => scale(m.variance, 1 / m.count)) });
            m.variance.dispose();
          });
        }
      }
    } catch (e) {
      for (const list of moments.values()) list.forEach(free);
      throw e;
    } finally {
      for (const list of sums.values()) for (const s of list) s?.total.dispose();
    }
    for (const [layer, list] of moments) {
      list.forEach((m, b) => {
        if (!m) return;
        free(layer.stats[b]);
        layer.stats[b] = m;
      });
    }
    this.#method = method;
    this.#estimated = true;
    this.#frozen = true;
  }

  /**
   * Writes the statistics into each BatchNorm2d's `running_mean` and `running_var` (population
   * variance, see the class notes), so the plain model, detached, normalizes as AdaBN does in
   * eval mode. Other parameters and buffers, `num_batches_tracked` included, stay as they are.
   * Needs a single band (per-band statistics live only in this object and in saved files).
   */
  commit(): void {
    if (this.bands.count !== 1) {
      throw new AdabnError(
        `Cannot commit ${this.bands.count} timestep bands into one set of running statistics; ` +
          "attach with a single band to commit, or keep AdaBN attached to use the bands",
      );
    }
    for (const { bn, stats } of this.#layers) {
      const s = stats[0]!;
      for (const [name, t] of [["running_mean", s.mean], ["running_var", s.variance]] as const) {
        const p = bn.param(name);
        p.assign(noGrad(() => p.value.dtype === t.dtype ? copy(t) : cast(t, p.value.dtype)));
      }
    }
  }

  /**
   * A host copy of every statistic, for saving (see `withAdabnStatistics`). `mode` defaults
   * to what happened: "before" after an estimate, "during" after online steps, both after both.
   */
  async snapshot(mode?: AdabnMode): Promise<AdabnSnapshot> {
    const layers = await Promise.all(this.#layers.map(async (l) => ({
      path: l.path,
      bands: await Promise.all(l.stats.map(async (s) => ({
        mean: await s.mean.toArray(),
        variance: await s.variance.toArray(),
        count: s.count,
      }))),
    })));
    const online = this.#onlineSteps > 0;
    const derived: AdabnMode = this.#estimated
      ? (online ? "before-and-during" : "before")
      : (online ? "during" : "alone");
    return {
      bands: [...this.bands.boundaries],
      mode: mode ?? derived,
      method: online ? (this.#estimated ? `${this.#method}+online` : "online") : this.#method,
      layers,
    };
  }

  /**
   * Replaces every statistic with a snapshot's (e.g. read back from a LoRA file). The snapshot
   * must have this object's bands, layers and channel counts; nothing changes otherwise.
   */
  load(snapshot: AdabnSnapshot): void {
    const same = snapshot.bands.length === this.bands.boundaries.length &&
      snapshot.bands.every((b, i) => b === this.bands.boundaries[i]);
    if (!same) {
      throw new AdabnError(
        `The AdaBN statistics have bands [${snapshot.bands.join(", ")}] but this model's AdaBN ` +
          `has [${this.bands.boundaries.join(", ")}]; attach with the file's bands`,
      );
    }
    const byPath = new Map(snapshot.layers.map((l) => [l.path, l]));
    for (const layer of this.#layers) {
      const s = byPath.get(layer.path);
      const C = layer.bn.channels;
      const ok = s && s.bands.length === this.bands.count &&
        s.bands.every((b) => b.mean.length === C && b.variance.length === C);
      if (!ok) {
        throw new AdabnError(
          `The AdaBN statistics ${s ? "do not fit" : "lack"} layer "${layer.path}" (${C} ` +
            `channels, ${this.bands.count} bands); load statistics saved for this model`,
        );
      }
    }
    if (byPath.size !== this.#layers.length) {
      throw new AdabnError(
        `The AdaBN statistics cover ${byPath.size} layers but the model has ` +
          `${this.#layers.length} BatchNorm2d layers; load statistics saved for this model`,
      );
    }
    for (const layer of this.#layers) {
      const s = byPath.get(layer.path)!;
      layer.stats.forEach((old, b) => {
        const src = s.bands[b]!;
        const C = layer.bn.channels;
        free(old);
        layer.stats[b] = keep({
          mean: tensor(src.mean, [C]),
          variance: tensor(src.variance, [C]),
          count: src.count,
        });
      });
    }
  }

  /** Removes the hooks: the model runs its own batch norm again. The statistics stay here. */
  detach(): void {
    if (!this.#attached) return;
    this.#attached = false;
    for (const { bn } of this.#layers) Reflect.deleteProperty(bn, "forward");
    if (this.#model instanceof UNet2DConditionModel) {
      Reflect.deleteProperty(this.#model, "forward");
    }
  }

  /** Detaches and frees the statistics. */
  dispose(): void {
    this.detach();
    for (const l of this.#layers) l.stats.forEach(free);
  }

  /** `using adabn = ...` support. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #layer(path: string): Layer {
    const layer = this.#layers.find((l) => l.path === path);
    if (!layer) {
      throw new AdabnError(
        `No adapted BatchNorm2d at "${path}"; the layers are ${
          this.layers.slice(0, 6).map((p) => `"${p}"`).join(", ")
        }${this.#layers.length > 6 ? ", ..." : ""}`,
      );
    }
    return layer;
  }

  /** The band of each sample of a batch of `B`. */
  #bandsOf(B: number): number[] {
    const t = this.#timesteps;
    if (t === null) {
      if (this.bands.count === 1) return new Array(B).fill(0);
      throw new AdabnError(
        `AdaBN has ${this.bands.count} timestep bands but no timestep was set for this forward; ` +
          "call setTimesteps(t) before the forward",
      );
    }
    if (typeof t === "number") return new Array(B).fill(this.bands.bandOf(t));
    if (t.length === 1) return new Array(B).fill(this.bands.bandOf(t[0]!));
    if (t.length !== B) {
      throw new AdabnError(
        `AdaBN got ${t.length} timesteps for a batch of ${B}; pass one timestep, or one per ` +
          "sample",
      );
    }
    return t.map((v) => this.bands.bandOf(v));
  }

  // x: [B, C, H, W] -> same shape
  #forward(layer: Layer, x: Tensor): Tensor {
    const bands = this.#bandsOf(x.shape[0]!);
    const groups = new Map<number, number[]>();
    bands.forEach((b, i) => groups.set(b, [...(groups.get(b) ?? []), i]));
    const part = (idx: number[]): Tensor =>
      idx.length === x.shape[0] ? x : concat(idx.map((i) => slice(x, 0, i, i + 1)), 0);
    const bn = layer.bn;
    const w = bn.param("weight").value, b = bn.param("bias").value;
    return scope(() => {
      if (this.#collect) {
        noGrad(() => {
          for (const [band, idx] of groups) this.#gather(layer, band, part(idx));
        });
        return batchNorm(x, w, b, null, { training: true, eps: bn.eps });
      }
      if (!this.#frozen && layer.mergedAt !== this.#step) {
        layer.mergedAt = this.#step;
        if (layer === this.#layers[0]) this.#onlineSteps++;
        for (const [band, idx] of groups) {
          const batch = batchMoments(part(idx));
          const merged = keep(mergeMoments(layer.stats[band]!, batch));
          free(batch);
          free(layer.stats[band]);
          layer.stats[band] = merged;
        }
      }
      const normalize = (v: Tensor, band: number): Tensor => {
        const s = layer.stats[band]!;
        const state = { runningMean: s.mean, runningVar: s.variance };
        return batchNorm(v, w, b, state, { training: false, eps: bn.eps });
      };
      if (groups.size === 1) return normalize(x, bands[0]!);
      return concat(bands.map((band, i) => normalize(slice(x, 0, i, i + 1), band)), 0);
    });
  }

  #gather(layer: Layer, band: number, x: Tensor): void {
    const c = this.#collect!;
    if (c.pass === "sum") {
      const list = c.sums.get(layer)!;
      const prev = list[band] ?? null;
      const s = channelSum(x);
      untrack(s);
      list[band] = {
        total: prev ? add(prev.total, s) : s,
        count: (prev?.count ?? 0) + valuesPerChannel(x),
      };
      if (prev) {
        untrack(list[band]!.total);
        prev.total.dispose();
        s.dispose();
      }
      return;
    }
    const list = c.moments.get(layer)!;
    const prev = list[band] ?? null;
    if (c.pass === "online") {
      const batch = batchMoments(x);
      list[band] = keep(prev ? mergeMoments(prev, batch) : batch);
      if (prev) {
        free(prev);
        free(batch);
      }
      return;
    }
    if (!prev) return; // the first pass saw no sample of this band, so neither does this one
    const d = channelSquaredDeviations(x, prev.mean);
    list[band] = keep({ ...prev, variance: add(prev.variance, d) });
    d.dispose();
    prev.variance.dispose();
  }
}
