/**
 * LoRA for Linear and 1x1 conv layers, LoCon for k x k convs: a low-rank update attached to a
 * layer of a loaded model without copying or changing its weights,
 * `y = base(x) + multiplier * (alpha / r) * up(down(x))`.
 *
 * @module
 */
import { Linear } from "../nn/layers/linear.ts";
import type { Conv2d } from "../nn/layers/conv2d.ts";
import { dtypeBytes, type Tensor } from "../ops/tensor.ts";
import { deviceInfo } from "../ops/device.ts";
import { slice } from "../ops/slice.ts";
import { dropoutMask, Generator, rand, uniformRef } from "../ops/rng.ts";
import { zeros } from "../ops/creation.ts";
import { add, mul } from "../ops/binary.ts";
import { scale as scaleOp } from "../ops/unary.ts";
import { matmul } from "../ops/matmul.ts";
import { conv2d } from "../ops/conv2d.ts";
import { reshape } from "../ops/reshape.ts";
import { scope } from "../ops/scope.ts";
import { loraConv2d, loraLinear } from "../ops/lora.ts";
import { ArgumentError } from "../ops/errors.ts";
import { AttachedAdapter } from "./attached_adapter.ts";

/** kohya's training-only dropouts (`networks/lora.py`, `LoRAModule.forward`). */
export interface LoraDropouts {
  /** Dropout on the rank activations `down(x)` (kohya's `--network_dropout`). */
  dropout?: number;
  /** Per-sample mask over the rank, the kept ones scaled by 1 / (1 - p) (`rank_dropout`). */
  rankDropout?: number;
  /** Probability of skipping the whole adapter for one call (`module_dropout`). */
  moduleDropout?: number;
}

/** Options of {@link LoraModule}. */
export interface LoraModuleOptions extends LoraDropouts {
  /** Stream of the initial `down` weights and of the dropouts (default: a new stream of seed 0). */
  generator?: Generator;
  /** Multiplier of the update (default 1). */
  multiplier?: number;
}

function checkProbability(p: number, what: string): void {
  if (!(p >= 0 && p < 1)) {
    throw new ArgumentError(`${what} must be in [0, 1), got ${p}`);
  }
}

// Linear:  x: [..., in] -> [..., out]; down [r, in], up [out, r]
// Conv2d:  x: [B, in, H, W] -> [B, out, Ho, Wo]; down [r, in, k, k], up [out, r, 1, 1]
/**
 * A LoRA (Linear, 1x1 conv) or LoCon (k x k conv, down sharing the kernel, stride and padding)
 * adapter. `lora_down` starts kaiming-uniform (a = sqrt 5, i.e. +-1/sqrt(fan_in)) and `lora_up`
 * at zero, so a fresh adapter leaves the layer's output unchanged. Only its own two parameters are
 * trainable; `attach` routes the layer's forward through it.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { Linear } from "../nn/layers/linear.ts";
 * import { LoraModule } from "./lora_module.ts";
 * await getDevice();
 * const fc = new Linear(16, 8).freeze();
 * const lora = new LoraModule(fc, 4, 2).attach();
 * console.log(fc.forward(randn([2, 16])).shape, lora.scale); // [2, 8] 0.5
 * ```
 */
export class LoraModule extends AttachedAdapter<Linear | Conv2d> {
  /** Rank. */
  readonly rank: number;
  /** Alpha; the update is scaled by alpha / rank. */
  readonly alpha: number;
  /** Multiplier of the update. */
  multiplier: number;
  /** Dropout on the rank activations (training only). */
  dropout: number;
  /** Per-sample rank dropout (training only). */
  rankDropout: number;
  /** Probability of skipping the adapter for a call (training only). */
  moduleDropout: number;
  readonly #generator: Generator;

  /** A fresh adapter for `target` (not attached yet). */
  constructor(
    target: Linear | Conv2d,
    rank: number,
    alpha: number,
    options: LoraModuleOptions = {},
  ) {
    super(target);
    if (!Number.isInteger(rank) || rank < 1) {
      throw new ArgumentError(`A LoRA rank must be a whole number >= 1, got ${rank}`);
    }
    if (!Number.isFinite(alpha)) {
      throw new ArgumentError(`A LoRA alpha must be a finite number, got ${alpha}`);
    }
    this.rank = rank;
    this.alpha = alpha;
    this.multiplier = options.multiplier ?? 1;
    this.dropout = options.dropout ?? 0;
    this.rankDropout = options.rankDropout ?? 0;
    this.moduleDropout = options.moduleDropout ?? 0;
    checkProbability(this.dropout, "The LoRA dropout");
    checkProbability(this.rankDropout, "The LoRA rank dropout");
    checkProbability(this.moduleDropout, "The LoRA module dropout");
    this.#generator = options.generator ?? new Generator(0);
    const [downShape, upShape] = loraShapes(target, rank);
    const fanIn = downShape.slice(1).reduce((a, b) => a * b, 1);
    const bound = 1 / Math.sqrt(fanIn);
    this.addParameter(
      "lora_down",
      rand(downShape, { low: -bound, high: bound, generator: this.#generator }),
    );
    this.addParameter("lora_up", zeros(upShape));
  }

  /** `alpha / rank`. */
  get scale(): number {
    return this.alpha / this.rank;
  }

  /** The adapted output. */
  override forward(x: Tensor): Tensor {
    const t = this.target;
    const train = this.training;
    if (train && this.moduleDropout > 0 && this.#draw() < this.moduleDropout) {
      return t.baseForward(x);
    }
    const down = this.param("lora_down").value, up = this.param("lora_up").value;
    const s = this.multiplier * this.scale;
    const w0 = t.param("weight").value;
    const bias = t.hasBias ? t.param("bias").value : null;
    if (!train || (this.dropout === 0 && this.rankDropout === 0)) {
      if (t instanceof Linear) {
        if (x.shape.length >= 2) return loraLinear(x, w0, bias, down, up, s);
        return scope(() =>
          reshape(loraLinear(reshape(x, [1, x.shape[0]!]), w0, bias, down, up, s), [t.outFeatures])
        );
      }
      const chunk = unfoldChunk(t, x);
      if (chunk === 0) {
        return loraConv2d(x, w0, bias, down, up, s, { stride: t.stride, padding: t.padding });
      }
      // The unfolded input exceeds one storage binding: the base conv and the down conv both
      // split the input channels into chunks whose partial convolutions are summed.
      return scope(() => {
        const opts = { stride: t.stride, padding: t.padding };
        let h: Tensor | null = null;
        for (let c0 = 0; c0 < t.inChannels; c0 += chunk) {
          const c1 = Math.min(t.inChannels, c0 + chunk);
          const part = conv2d(slice(x, 1, c0, c1), slice(down, 1, c0, c1), null, opts);
          h = h ? add(h, part) : part;
        }
        return add(t.baseForward(x), scaleOp(conv2d(h!, up, null), s));
      });
    }
    return scope(() => {
      const linear = t instanceof Linear;
      let h = linear
        ? matmul(x, down, { transB: true })
        : conv2d(x, down, null, { stride: t.stride, padding: t.padding });
      const g = { generator: this.#generator };
      if (this.dropout > 0) h = mul(h, dropoutMask(h.shape, this.dropout, g));
      if (this.rankDropout > 0) {
        const B = h.shape[0]!;
        const maskShape = linear
          ? [B, ...new Array<number>(h.shape.length - 2).fill(1), this.rank]
          : [B, this.rank, 1, 1];
        h = mul(
          h,
          dropoutMask(h.shape.length === 1 ? [this.rank] : maskShape, this.rankDropout, g),
        );
      }
      const z = linear ? matmul(h, up, { transB: true }) : conv2d(h, up, null);
      return add(t.baseForward(x), scaleOp(z, s));
    });
  }

  #draw(): number {
    return uniformRef(this.#generator.seed, this.#generator.take(1));
  }
}

/**
 * Input channels per chunk when `target`'s unfolded input (B Cin k k Ho Wo values) would exceed
 * one storage binding (as `Conv2d` splits its own), or 0 when it fits.
 */
function unfoldChunk(target: Conv2d, x: Tensor): number {
  const k = target.kernelSize;
  if (x.shape.length !== 4 || (k === 1 && target.stride === 1 && target.padding === 0)) return 0;
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const Ho = Math.floor((H + 2 * target.padding - k) / target.stride) + 1;
  const Wo = Math.floor((W + 2 * target.padding - k) / target.stride) + 1;
  const perChannel = B * k * k * Math.max(Ho, 0) * Math.max(Wo, 0) * dtypeBytes(x.dtype);
  const limit = target.maxUnfoldBytes ?? deviceInfo().limits.maxStorageBufferBindingSize;
  const chunk = Math.floor(limit / Math.max(perChannel, 1));
  return C * perChannel <= limit || chunk < 1 || C !== target.inChannels ? 0 : chunk;
}

/** The `[down, up]` weight shapes of a rank-`rank` adapter on `target`. */
export function loraShapes(target: Linear | Conv2d, rank: number): [number[], number[]] {
  if (target instanceof Linear) {
    return [[rank, target.inFeatures], [target.outFeatures, rank]];
  }
  const k = target.kernelSize;
  return [[rank, target.inChannels, k, k], [target.outChannels, rank, 1, 1]];
}
