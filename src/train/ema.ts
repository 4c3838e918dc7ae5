/**
 * An exponential moving average (EMA) of trained weights, updated after every optimizer step
 * with diffusers' `EMAModel` rule (`src/diffusers/training_utils.py`, `get_decay` with
 * `use_ema_warmup=False`, `update_after_step=0`, `min_decay=0`): update `n` (1-based) uses
 * `decay_n = 0` for `n = 1` and `min(decay, (1 + s) / (10 + s))` with `s = n - 1` after, then
 * `shadow = decay_n * shadow + (1 - decay_n) * param`. Latent diffusion and diffusers'
 * `train_text_to_image --use_ema` sample from such an average.
 *
 * @module
 */
import { noGrad } from "../ops/autograd.ts";
import { copy } from "../ops/creation.ts";
import { ArgumentError, fmtShape } from "../ops/errors.ts";
import { lincomb } from "../ops/lincomb.ts";
import { copyBuffer } from "../ops/runtime.ts";
import { untrack } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";

/** What `EmaWeights` saves for an exact resume. */
export interface EmaState {
  /** Updates done so far. */
  updates: number;
  /** The averaged weights, one per parameter, in the parameters' order. */
  shadow: Tensor[];
}

/**
 * The decay of update `n` (1-based): 0 for the first (the shadow becomes the weights), then
 * `min(decay, (1 + s) / (10 + s))` with `s = n - 1` (diffusers' `get_decay`, no warm-up power).
 *
 * @example
 * ```ts ignore
 * emaDecayAt(0.9999, 2); // 2 / 11
 * ```
 */
export function emaDecayAt(decay: number, n: number): number {
  const s = n - 1;
  return s <= 0 ? 0 : Math.min(decay, (1 + s) / (10 + s));
}

/**
 * A shadow copy of parameter tensors that follows them as an EMA, on the GPU (one `lincomb`
 * dispatch per parameter and update, no readback). `swap()` exchanges the shadow with the
 * parameters' contents, to sample or save with the averaged weights (and back).
 *
 * @example
 * ```ts ignore
 * const ema = new EmaWeights(optimizer.params, 0.9999);
 * optimizer.step();
 * ema.update();
 * ema.swap(); // the model now holds the averaged weights
 * ```
 */
export class EmaWeights {
  /** The parameters it follows (their tensors are read, and written only by `swap`). */
  readonly params: readonly Tensor[];
  /** The decay the warm-up rises to, in (0, 1). */
  readonly decay: number;
  #state: EmaState;
  #swapped = false;

  /** Starts the shadow as a copy of `params`. */
  constructor(params: readonly Tensor[], decay: number) {
    if (!(decay > 0 && decay < 1)) {
      throw new ArgumentError(`The EMA decay must lie in (0, 1), got ${decay}; pass e.g. 0.9999`);
    }
    this.params = params;
    this.decay = decay;
    this.#state = { updates: 0, shadow: params.map((p) => untrack(copy(p))) };
  }

  /** Updates done so far. */
  get updates(): number {
    return this.#state.updates;
  }

  // shadow_i, param_i: [...] -> shadow_i (same shape)
  /** One update after an optimizer step: `shadow = d * shadow + (1 - d) * param`. */
  update(): void {
    if (this.#swapped) {
      throw new ArgumentError("The EMA weights are swapped into the model; swap() them back first");
    }
    const s = this.#state;
    const d = emaDecayAt(this.decay, ++s.updates);
    noGrad(() => {
      s.shadow = s.shadow.map((old, i) => {
        const next = untrack(lincomb([{ x: old, c: d }, { x: this.params[i]!, c: 1 - d }]));
        old.dispose();
        return next;
      });
    });
  }

  /** Exchanges the shadow with the parameters' contents (two buffer copies per parameter). */
  swap(): void {
    const s = this.#state;
    s.shadow = s.shadow.map((shadow, i) => {
      const p = this.params[i]!;
      const raw = untrack(copy(p));
      copyBuffer(shadow.buffer, 0, p.buffer, 0, Math.ceil(p.bytes / 4) * 4);
      shadow.dispose();
      return raw;
    });
    this.#swapped = !this.#swapped;
  }

  /** The shadow and update count (live tensors; the shadow is the raw weights while swapped). */
  state(): EmaState {
    return this.#state;
  }

  /** Replaces the shadow and update count (shapes must match the parameters; takes the tensors). */
  loadState(state: EmaState): void {
    if (state.shadow.length !== this.params.length) {
      throw new ArgumentError(
        `The EMA state has ${state.shadow.length} weights for ${this.params.length} parameters; ` +
          "resume with the same model and trained parts",
      );
    }
    state.shadow.forEach((t, i) => {
      const want = this.params[i]!.shape;
      if (t.shape.join() !== want.join()) {
        throw new ArgumentError(
          `EMA weight ${i} has shape ${fmtShape(t.shape)}, but its parameter is ${
            fmtShape(want)
          }; resume with the same model size`,
        );
      }
    });
    for (const t of this.#state.shadow) t.dispose();
    this.#state = { updates: state.updates, shadow: state.shadow.map((t) => untrack(t)) };
  }

  /** Frees the shadow. */
  dispose(): void {
    for (const t of this.#state.shadow) t.dispose();
  }
}

/** CPU reference of update `n` (1-based; float64, in place on `shadow`). */
export function emaRef(
  shadow: Float64Array,
  param: ArrayLike<number>,
  decay: number,
  n: number,
): void {
  const d = emaDecayAt(decay, n);
  for (let i = 0; i < shadow.length; i++) shadow[i] = d * shadow[i]! + (1 - d) * param[i]!;
}
