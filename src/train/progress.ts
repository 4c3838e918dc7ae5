/**
 * What a user sees while training: a smoothed loss, a steps-per-second meter and the progress
 * line (step/total, epoch, it/s, ETA, smoothed loss, LR).
 *
 * @module
 */

/**
 * An exponential moving average with bias correction (the first values are not pulled to 0).
 *
 * @example
 * ```ts
 * import { LossSmoother } from "./progress.ts";
 * const s = new LossSmoother(0.9);
 * s.add(1);
 * console.log(s.value); // 1
 * ```
 */
export class LossSmoother {
  readonly #beta: number;
  #avg = 0;
  #n = 0;
  /** `beta` is the weight of the past (default 0.9). */
  constructor(beta = 0.9) {
    this.#beta = beta;
  }
  /** Adds a value (non-finite values are skipped). */
  add(v: number): void {
    if (!Number.isFinite(v)) return;
    this.#avg = this.#beta * this.#avg + (1 - this.#beta) * v;
    this.#n++;
  }
  /** The smoothed value (NaN before the first value). */
  get value(): number {
    return this.#n === 0 ? NaN : this.#avg / (1 - this.#beta ** this.#n);
  }
}

/** `h:mm:ss` or `m:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
}

/** What the progress line shows. */
export interface ProgressInfo {
  /** Optimizer steps done. */
  step: number;
  /** Steps in the run. */
  totalSteps: number;
  /** Current epoch (1-based). */
  epoch: number;
  /** Epochs in the run. */
  totalEpochs: number;
  /** Steps per second (recent). */
  itPerSec: number;
  /** Smoothed loss. */
  loss: number;
  /** Current learning rate. */
  lr: number;
}

/**
 * One line: `step 120/1600 (7.5%) | epoch 2/10 | 1.85 it/s | ETA 13:20 | loss 0.1234 | lr 1.00e-4`.
 *
 * @example
 * ```ts
 * import { formatProgress } from "./progress.ts";
 * console.log(formatProgress({ step: 120, totalSteps: 1600, epoch: 2, totalEpochs: 10, itPerSec: 1.85, loss: 0.1234, lr: 1e-4 }));
 * ```
 */
export function formatProgress(p: ProgressInfo): string {
  const pct = p.totalSteps > 0 ? (100 * p.step / p.totalSteps).toFixed(1) : "0.0";
  const eta = p.itPerSec > 0 ? formatDuration((p.totalSteps - p.step) / p.itPerSec) : "?";
  const rate = p.itPerSec >= 1 || p.itPerSec === 0
    ? `${p.itPerSec.toFixed(2)} it/s`
    : `${(1 / p.itPerSec).toFixed(2)} s/it`;
  const loss = Number.isFinite(p.loss) ? p.loss.toFixed(4) : "-";
  return `step ${p.step}/${p.totalSteps} (${pct}%) | epoch ${p.epoch}/${p.totalEpochs} | ${rate} | ` +
    `ETA ${eta} | loss ${loss} | lr ${p.lr.toExponential(2)}`;
}

/**
 * Steps per second over the last `window` steps.
 *
 * @example
 * ```ts
 * import { RateMeter } from "./progress.ts";
 * const m = new RateMeter();
 * m.tick(0);
 * m.tick(500);
 * console.log(m.perSecond); // 2
 * ```
 */
export class RateMeter {
  readonly #times: number[] = [];
  readonly #window: number;
  /** `window` steps are averaged (default 20). */
  constructor(window = 20) {
    this.#window = window;
  }
  /** Records a finished step at `nowMs` (default `performance.now()`). */
  tick(nowMs: number = performance.now()): void {
    this.#times.push(nowMs);
    if (this.#times.length > this.#window + 1) this.#times.shift();
  }
  /** Steps per second (0 until two ticks). */
  get perSecond(): number {
    const t = this.#times;
    if (t.length < 2) return 0;
    const dt = (t.at(-1)! - t[0]!) / 1000;
    return dt > 0 ? (t.length - 1) / dt : 0;
  }
}
