/**
 * The VAE's pretraining step: reconstruction loss plus a small KL term, as the latent diffusion
 * autoencoders (LDM's `LPIPSWithDiscriminator` with the perceptual and adversarial terms off).
 * Chosen loss, per pixel value: `|x - x'| + (x - x')^2` (L1 as LDM, plus L2 for PSNR), plus
 * `klWeight * KL / (C H W)` where KL is the per-image sum of the diagonal Gaussian's divergence
 * from N(0, 1): the same ratio of KL to reconstruction as LDM's sums with `kl_weight` 1e-6.
 *
 * @module
 */
import type { AdamW } from "../ops/adamw.ts";
import { backward, detach } from "../ops/autograd.ts";
import { add, sub } from "../ops/binary.ts";
import { zeros } from "../ops/creation.ts";
import type { Generator } from "../ops/rng.ts";
import { mean, sum } from "../ops/reduce.ts";
import { scope, untrack } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { affine, exp, relu, scale, square } from "../ops/unary.ts";
import type { AutoencoderKL } from "../nn/vae.ts";
import type { LossReport } from "./train_step.ts";

/** Settings of {@link VaeStepper}. */
export interface VaeStepOptions {
  /** Weight of the KL term (default 1e-6, LDM's `kl_weight`). */
  klWeight?: number;
}

// x: [B, 3, H, W] in [-1, 1] -> scalar loss
/**
 * The VAE loss of a batch (differentiable): mean `|d| + d^2` over pixels plus the scaled KL.
 *
 * @example
 * ```ts
 * import { AutoencoderKL, Generator, getDevice, randn } from "../../mod.ts";
 * import { vaeLoss } from "./pretrain_vae_step.ts";
 * await getDevice();
 * const vae = new AutoencoderKL({ blockOutChannels: [8, 16], layersPerBlock: 1, normNumGroups: 4 });
 * console.log(await vaeLoss(vae, randn([1, 3, 8, 8]), new Generator(1)).item());
 * ```
 */
export function vaeLoss(
  vae: AutoencoderKL,
  x: Tensor,
  generator: Generator,
  options: VaeStepOptions = {},
): Tensor {
  const klWeight = options.klWeight ?? 1e-6;
  return scope(() => {
    const dist = vae.encode(x);
    const z = vae.sample(dist, { generator });
    const d = sub(vae.decode(z), x);
    const rec = mean(add(add(relu(d), relu(affine(d, -1, 0))), square(d)));
    // KL(N(m, e^lv) || N(0, 1)) = 0.5 sum(m^2 + e^lv - 1 - lv), per image
    const kl = scale(
      sum(sub(add(square(dist.mean), exp(dist.logvar)), affine(dist.logvar, 1, 1))),
      0.5,
    );
    const [B, C, H, W] = x.shape as [number, number, number, number];
    return add(rec, scale(kl, klWeight / (B * C * H * W)));
  });
}

/**
 * Runs VAE training steps; the loss is summed on the GPU and read once per drain.
 *
 * @example
 * ```ts
 * import { AdamW, AutoencoderKL, Generator, getDevice, randn } from "../../mod.ts";
 * import { VaeStepper } from "./pretrain_vae_step.ts";
 * await getDevice();
 * const vae = new AutoencoderKL({ blockOutChannels: [8, 16], layersPerBlock: 1, normNumGroups: 4 });
 * const opt = new AdamW(vae.trainableParameters().map((p) => p.value), { lr: 1e-3 });
 * const s = new VaeStepper(vae, opt, new Generator(1), () => 1e-3);
 * s.run(randn([2, 3, 8, 8]));
 * console.log(await s.drainLoss());
 * ```
 */
export class VaeStepper {
  readonly #vae: AutoencoderKL;
  readonly #opt: AdamW;
  readonly #gen: Generator;
  readonly #lrAt: (step: number) => number;
  readonly #o: VaeStepOptions;
  #step = 0;
  #lossSum: Tensor;
  #count = 0;

  /** `lrAt(step)` gives the learning rate of step `step` (0-based). */
  constructor(
    vae: AutoencoderKL,
    optimizer: AdamW,
    generator: Generator,
    lrAt: (step: number) => number,
    options: VaeStepOptions = {},
  ) {
    this.#vae = vae;
    this.#opt = optimizer;
    this.#gen = generator;
    this.#lrAt = lrAt;
    this.#o = options;
    this.#lossSum = zeros([]);
    untrack(this.#lossSum);
  }

  /** Steps taken. */
  get step(): number {
    return this.#step;
  }

  // x: [B, 3, H, W] in [-1, 1]
  /** One optimizer step on a batch of images. */
  run(x: Tensor): void {
    scope(() => {
      const loss = vaeLoss(this.#vae, x, this.#gen, this.#o);
      const s = add(this.#lossSum, detach(loss));
      untrack(s);
      this.#lossSum.dispose();
      this.#lossSum = s;
      backward(loss);
    });
    this.#count++;
    this.#opt.step(this.#lrAt(this.#step));
    this.#opt.zeroGrad();
    this.#step++;
  }

  /** Reads and resets the loss sum (one readback). */
  async drainLoss(): Promise<LossReport> {
    const total = await this.#lossSum.item();
    const count = this.#count;
    this.#lossSum.dispose();
    this.#lossSum = zeros([]);
    untrack(this.#lossSum);
    this.#count = 0;
    return { mean: count ? total / count : NaN, count, finite: Number.isFinite(total) };
  }

  /** The position to save: steps taken and the noise stream's offset. */
  state(): { step: number; generatorOffset: number } {
    return { step: this.#step, generatorOffset: this.#gen.offset };
  }

  /** Continues from a saved position (the optimizer's moments are restored separately). */
  loadState(s: { step: number; generatorOffset: number }): void {
    this.#step = s.step;
    this.#gen.offset = s.generatorOffset;
  }

  /** Frees the loss accumulator. */
  dispose(): void {
    this.#lossSum.dispose();
  }
}
