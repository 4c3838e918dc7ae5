/**
 * AdamW with decoupled weight decay and bias correction, and global-norm gradient clipping; the
 * update and the clip factor stay on the GPU (no readback per step).
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { EW_GROUP } from "../wgsl/elementwise.ts";
import { adamwKernel, clipKernel } from "../wgsl/optim.ts";
import type { Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { noGrad } from "./autograd.ts";
import { untrack } from "./scope.ts";
import { zeros } from "./creation.ts";
import { add } from "./binary.ts";
import { square } from "./unary.ts";
import { sum } from "./reduce.ts";
import { inPhase, labelOp } from "./profiler.ts";
import { ArgumentError, DTypeError, fmtShape } from "./errors.ts";

/**
 * Squared global L2 norm of the gradients of `params` (a one-element tensor on the GPU).
 * Parameters without a gradient are skipped.
 */
export function gradSquaredNorm(params: readonly Tensor[]): Tensor {
  return noGrad(() => {
    let total = zeros([1]);
    for (const p of params) {
      if (!p.grad) continue;
      const sq = square(p.grad);
      const s = sum(sq);
      const next = add(total, s.view([1]));
      for (const t of [sq, s, total]) t.dispose();
      total = next;
    }
    return total;
  });
}

/**
 * Scales every gradient in place so that their global L2 norm is at most `maxNorm` (PyTorch's
 * `clip_grad_norm_`, factor `min(1, maxNorm / (norm + 1e-6))`). Returns the squared norm before
 * clipping, as a GPU tensor (read it only when you need it).
 *
 * @example
 * ```ts
 * import { clipGradNorm, getDevice, tensor } from "../../mod.ts";
 * await getDevice();
 * const p = tensor([0, 0], [2], { requiresGrad: true });
 * p.grad = tensor([3, 4], [2]);
 * clipGradNorm([p], 1);
 * console.log(await p.grad.toArray()); // ~0.6, 0.8
 * ```
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): Tensor {
  const sq = gradSquaredNorm(params);
  const k = cachedKernel("clip_grad", clipKernel);
  for (const p of params) {
    if (!p.grad) continue;
    dispatch(
      k,
      [p.grad.binding, sq.binding],
      [p.size, maxNorm],
      grid1d(Math.ceil(p.size / EW_GROUP)),
    );
  }
  labelOp("clip_grad_norm");
  return sq;
}

/** AdamW hyper-parameters. */
export interface AdamWOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** Moment decay rates (default [0.9, 0.999]). */
  betas?: [number, number];
  /** Denominator epsilon (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0.01). */
  weightDecay?: number;
  /** Clip the global gradient norm to this value inside `step()` (default: no clipping). */
  maxGradNorm?: number;
  /**
   * Per-parameter multipliers of the rate, like PyTorch's parameter groups with their own `lr`
   * (default 1 for each); the gradient norm stays global.
   */
  lrScales?: readonly number[];
}

/** Optimizer state, for checkpoints and exact resume. */
export interface AdamWState {
  /** Steps taken. */
  step: number;
  /** First moments, one per parameter. */
  m: Tensor[];
  /** Second moments, one per parameter. */
  v: Tensor[];
}

/**
 * AdamW (Loshchilov & Hutter, decoupled weight decay), PyTorch's update rule.
 *
 * @example
 * ```ts
 * import { AdamW, backward, getDevice, mul, sum, tensor } from "../../mod.ts";
 * await getDevice();
 * const w = tensor([1, -2], [2], { requiresGrad: true });
 * const opt = new AdamW([w], { lr: 0.1 });
 * backward(sum(mul(w, w)));
 * opt.step();
 * opt.zeroGrad();
 * ```
 */
export class AdamW {
  /** The parameters it updates (in place). */
  readonly params: readonly Tensor[];
  /** Hyper-parameters (lr may be changed between steps, e.g. by a schedule). */
  readonly options: Required<Omit<AdamWOptions, "maxGradNorm" | "lrScales">> & {
    maxGradNorm: number;
  };
  readonly #scales: readonly number[];
  #state: AdamWState;
  /** Bound in place of the gradient norm when there is no clipping (never read then). */
  readonly #noNorm: Tensor = untrack(zeros([1]));

  /** Creates zeroed moments for every parameter. */
  constructor(params: readonly Tensor[], options: AdamWOptions = {}) {
    for (const p of params) {
      if (p.dtype !== "f32") {
        throw new DTypeError(
          `AdamW keeps f32 master weights, but a parameter of shape ${
            fmtShape(p.shape)
          } is ${p.dtype}`,
        );
      }
    }
    const lr = options.lr ?? 1e-3;
    if (!(lr >= 0)) throw new ArgumentError(`AdamW learning rate must be >= 0, got ${lr}`);
    const scales = options.lrScales ?? params.map(() => 1);
    if (scales.length !== params.length || !scales.every((x) => x >= 0 && x < Infinity)) {
      throw new ArgumentError(
        `AdamW needs one finite lrScale >= 0 per parameter (${params.length}), got ` +
          `${scales.length}`,
      );
    }
    this.#scales = scales;
    this.params = params;
    this.options = {
      lr,
      betas: options.betas ?? [0.9, 0.999],
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0.01,
      maxGradNorm: options.maxGradNorm ?? 0,
    };
    this.#state = {
      step: 0,
      m: params.map((p) => untrack(zeros(p.shape))),
      v: params.map((p) => untrack(zeros(p.shape))),
    };
  }

  /** Steps taken so far. */
  get stepCount(): number {
    return this.#state.step;
  }

  /** One update of every parameter that has a gradient; `lr` overrides the stored rate. */
  step(lr: number = this.options.lr): void {
    inPhase("optimizer", () => this.#step(lr));
  }

  #step(lr: number): void {
    const s = this.#state;
    s.step++;
    const [b1, b2] = this.options.betas;
    const bc1 = 1 - b1 ** s.step, bc2 = 1 - b2 ** s.step;
    const max = this.options.maxGradNorm;
    const sq = max > 0 ? gradSquaredNorm(this.params) : this.#noNorm;
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      // vec4 loads where the size allows (~4x faster on software adapters)
      const vec4 = p.size % 4 === 0 &&
        [p, p.grad, s.m[i]!, s.v[i]!].every((t) => t.dtype === "f32");
      const k = cachedKernel(`adamw ${vec4}`, () => adamwKernel(vec4));
      const n = vec4 ? p.size / 4 : p.size;
      dispatch(
        k,
        [p.binding, p.grad.binding, s.m[i]!.binding, s.v[i]!.binding, sq.binding],
        [
          n,
          lr * this.#scales[i]!,
          b1,
          b2,
          this.options.eps,
          this.options.weightDecay,
          bc1,
          Math.sqrt(bc2),
          max,
        ],
        grid1d(Math.ceil(n / EW_GROUP)),
      );
    });
    labelOp("adamw");
    if (sq !== this.#noNorm) sq.dispose();
  }

  /** Frees every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The moments and step count (live tensors: copy them before saving if training goes on). */
  state(): AdamWState {
    return this.#state;
  }

  /** Replaces the moments and step count (shapes must match the parameters). */
  loadState(state: AdamWState): void {
    state.m.forEach((t, i) => {
      if (t.shape.join() !== this.params[i]?.shape.join()) {
        throw new ArgumentError(
          `AdamW state moment ${i} has shape ${fmtShape(t.shape)}, but the parameter is ${
            fmtShape(this.params[i]?.shape ?? [])
          }`,
        );
      }
    });
    for (const t of [...this.#state.m, ...this.#state.v]) t.dispose();
    this.#state = {
      step: state.step,
      m: state.m.map((t) => untrack(t)),
      v: state.v.map((t) => untrack(t)),
    };
  }

  /** Frees the moments. */
  dispose(): void {
    for (const t of [...this.#state.m, ...this.#state.v, this.#noNorm]) t.dispose();
  }
}

/** CPU reference of one AdamW step (float64, in place on `p`, `m`, `v`). */
export function adamwRef(
  p: Float64Array,
  g: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  step: number,
  o: Required<Omit<AdamWOptions, "maxGradNorm" | "lrScales">>,
  clip = 1,
): void {
  const [b1, b2] = o.betas;
  const bc1 = 1 - b1 ** step, bc2 = 1 - b2 ** step;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]! * clip;
    m[i] = b1 * m[i]! + (1 - b1) * gi;
    v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
    p[i] = p[i]! * (1 - o.lr * o.weightDecay);
    p[i] = p[i]! - (o.lr / bc1) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + o.eps);
  }
}
