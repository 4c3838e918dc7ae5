/**
 * The sampling loop: any denoiser `(x, t, context) -> prediction`, any sampler, classifier-free
 * guidance with a negative context, a per-step callback, and NaN detection that does not read
 * back every step.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { Generator, randn } from "../ops/rng.ts";
import { scale as scaleOp } from "../ops/unary.ts";
import { add, mul, sub } from "../ops/binary.ts";
import { catBatch, firstNonFiniteStep, markNonFinite, nonFiniteFlag } from "../ops/lincomb.ts";
import { ArgumentError, fmtShape, ShapeError } from "../ops/errors.ts";
import { noGrad } from "../ops/autograd.ts";
import { checkName } from "./schedules.ts";
import { checkSteps } from "./spacing.ts";
import {
  NonFiniteError,
  PREDICTIONS,
  type Sampler,
  SAMPLER_NAMES,
  type SamplerName,
  type SamplerOptions,
} from "./sampler.ts";
import { DDPMSampler } from "./ddpm.ts";
import { DDIMSampler } from "./ddim.ts";
import { EulerSampler } from "./euler.ts";
import { EulerAncestralSampler } from "./euler_ancestral.ts";
import { DPMpp2MSampler } from "./dpmpp_2m.ts";
import { guide, guideBatched } from "./guidance.ts";
import { combine, sigmaDenoiseCoefs } from "./sampler.ts";
import { createSchedule } from "./schedules.ts";
import { SIGMA_SCHEDULES, sigmaSchedule, type SigmaScheduleName } from "./sigma_schedules.ts";
import { kSampler, resolveSamplerLabel, type SamplerChoice } from "./k_samplers.ts";
import type { NoiseSource } from "./k/k_sampler.ts";

/**
 * Creates a sampler for a run of `steps` steps. Unknown names list the valid ones; steps must be
 * 1 .. the training timesteps.
 *
 * @example
 * ```ts
 * import { createSampler } from "./sample.ts";
 * const s = createSampler("dpmpp_2m_karras", 25);
 * console.log(s.sigmas.slice(0, 4)); // 14.6147, 12.2830, 10.2778, 8.5600
 * ```
 */
export function createSampler(
  name: SamplerName | string,
  steps: number,
  options: SamplerOptions = {},
): Sampler {
  const n = checkName(name, SAMPLER_NAMES, "sampler");
  checkSteps(steps, options.schedule?.trainSteps ?? 1000);
  switch (n) {
    case "ddpm":
      return new DDPMSampler(steps, options);
    case "ddim":
      return new DDIMSampler(steps, options);
    case "euler":
      return new EulerSampler(steps, options);
    case "euler_a":
      return new EulerAncestralSampler(steps, options);
    case "dpmpp_2m":
      return new DPMpp2MSampler(steps, options);
    case "dpmpp_2m_karras":
      return new DPMpp2MSampler(steps, { ...options, karras: true });
  }
}

/**
 * A denoiser: the model's prediction (epsilon or v, as the sampler's `prediction` says) for the
 * model input `x` at timestep `t` with a conditioning `context`. It must return a new tensor,
 * which the loop disposes after use.
 */
export type Denoiser = (
  x: Tensor,
  t: number,
  context: Tensor | undefined,
) => Tensor | Promise<Tensor>;

/** What the per-step callback sees; the tensors are valid only during the call. */
export interface StepInfo {
  /** The step just taken (0-based). */
  step: number;
  /** Steps in the run. */
  steps: number;
  /** The model timestep of this step. */
  timestep: number;
  /** The noise level before the step (k-diffusion sigma). */
  sigma: number;
  /** The noise level after the step. */
  sigmaNext: number;
  /** The sample after the step. */
  x: Tensor;
  /** The model's estimate of the clean sample at this step (for previews). */
  denoised: Tensor;
}

/** Options of `sample`. */
export interface SampleOptions extends SamplerOptions {
  /** A sampler name (default `euler`) or a sampler made by `createSampler`. */
  sampler?: SamplerName | string | Sampler;
  /** Steps (default 25; ignored when `sampler` is an instance). */
  steps?: number;
  /** Shape of the sample, e.g. `[B, 4, 64, 64]` (needed unless `noise` is given). */
  shape?: readonly number[];
  /** Seed of the noise (initial and ancestral); overrides `generator`. */
  seed?: number;
  /** Initial standard-normal noise (default drawn from the seed); not disposed by `sample`. */
  noise?: Tensor;
  /** The conditioning passed to the denoiser (e.g. the prompt's text embedding). */
  context?: Tensor;
  /** The unconditional / negative-prompt conditioning of classifier-free guidance. */
  negativeContext?: Tensor;
  /** Guidance scale `s` in `u + s (c - u)` (default 1: no guidance, one model call per step). */
  guidanceScale?: number;
  /**
   * Run the unconditional and conditional predictions as one model call on a doubled batch
   * (default true; needs `context` and `negativeContext` of one shape): the denoiser then gets
   * `[x; x]` and the context `[negativeContext; context]` and returns `[uncond; cond]`. With
   * false, two calls per step (conditional first).
   */
  batchGuidance?: boolean;
  /**
   * Read the NaN flag every this many steps (default 0: only after the last step). Checking
   * costs a GPU sync (~10 ms and a pipeline stall) each time; the flag itself is set on the GPU
   * every step, so the error always names the first bad step.
   */
  checkEvery?: number;
  /** Called after every step (awaited; reading tensors back there costs a sync). */
  onStep?: (info: StepInfo) => void | Promise<void>;
  /**
   * A sigma schedule by ComfyUI's name (`normal`, `karras`, ...): runs the sampler in
   * k-diffusion form over those sigmas. Without it, the diffusers-style names (`euler`,
   * `dpmpp_2m_karras`, ...) keep their diffusers tables, and every other ComfyUI sampler name or
   * AUTOMATIC1111 label ("DPM++ 2M Karras") runs in k-diffusion form with the schedule it implies.
   */
  sigmaSchedule?: SigmaScheduleName | string;
  /** The noise of a stochastic k-diffusion sampler (default: drawn from the seed). */
  noiseSource?: NoiseSource;
  /**
   * img2img: the starting latents (already multiplied by the VAE's scaling factor), shape of the
   * sample. Runs the k-diffusion path (diffusers-style names map to their k-diffusion twins).
   */
  initLatent?: Tensor;
  /**
   * img2img strength in [0, 1] (default 1): as AUTOMATIC1111, with
   * `t_enc = floor(min(strength, 0.999) steps)`, the last `t_enc + 1` steps of the full
   * `steps`-step schedule (`sigmas[steps - t_enc - 1:]`), from `initLatent + sigma noise`; 0
   * returns `initLatent` unchanged, 1 is text-to-image (pure noise).
   */
  strength?: number;
  /**
   * Inpainting mask, 1 where to repaint, broadcastable to the sample (e.g. `[1, 1, h, w]`):
   * every denoised estimate is blended with `initLatent` as `init + mask (D - init)` (A1111's
   * latent blending for ordinary checkpoints).
   */
  mask?: Tensor;
}

/**
 * Which k-diffusion sampler and sigma schedule a `sample` call names, or undefined for the
 * diffusers-style samplers. Unknown names list every valid one.
 */
export function kChoice(
  spec: string,
  sigmaSchedule: string | undefined,
  force = false,
): SamplerChoice | undefined {
  if (sigmaSchedule !== undefined) checkName(sigmaSchedule, SIGMA_SCHEDULES, "sigma schedule");
  const legacy = (SAMPLER_NAMES as readonly string[]).includes(spec);
  if (sigmaSchedule === undefined && legacy && !force) return undefined;
  let choice: SamplerChoice;
  if (spec === "euler_a") choice = { sampler: "euler_ancestral", schedule: "normal" };
  else if (spec === "dpmpp_2m_karras") choice = { sampler: "dpmpp_2m", schedule: "karras" };
  else {
    try {
      choice = resolveSamplerLabel(spec);
    } catch (e) {
      throw new ArgumentError(`${(e as Error).message}; or one of ${SAMPLER_NAMES.join(", ")}`);
    }
  }
  return sigmaSchedule === undefined
    ? choice
    : { sampler: choice.sampler, schedule: sigmaSchedule as SigmaScheduleName };
}

/**
 * Runs a sampler with a denoiser and returns the final sample. The loop keeps everything on the
 * GPU: per step it scales the model input, calls the denoiser (once, or on a doubled batch for
 * guidance), marks NaN / infinity in the model output into a GPU flag, applies guidance and the
 * sampler step. The flag is read after the last step (and every `checkEvery` steps), so a bad
 * model output throws a `NonFiniteError` naming the first bad step without a readback per step.
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/device.ts";
 * import { scale } from "../ops/unary.ts";
 * import { sample } from "./sample.ts";
 * await getDevice();
 * // a model that predicts zero noise: the sampler just rescales the initial noise
 * const x = await sample((x) => scale(x, 0), { shape: [1, 4, 8, 8], sampler: "euler", steps: 4, seed: 1 });
 * console.log(x.shape);
 * ```
 */
export async function sample(denoiser: Denoiser, options: SampleOptions): Promise<Tensor> {
  const generator = options.seed !== undefined ? new Generator(options.seed) : options.generator;
  const samplerOptions: SamplerOptions = generator ? { ...options, generator } : options;
  const spec = options.sampler ?? "euler";
  const img2img = options.initLatent !== undefined || options.mask !== undefined;
  if (img2img && typeof spec !== "string") {
    throw new ArgumentError("img2img and inpainting need a sampler name, not a sampler instance");
  }
  const choice = typeof spec === "string"
    ? kChoice(spec, options.sigmaSchedule, img2img)
    : undefined;
  if (choice) {
    return await sampleK(denoiser, choice, { ...options, ...(generator ? { generator } : {}) });
  }
  const owned = typeof spec === "string";
  const sampler = typeof spec === "string"
    ? createSampler(spec, options.steps ?? 25, samplerOptions)
    : spec;
  const { gs, guided, batched, ctx, neg } = guidanceOf(options);
  const checkEvery = options.checkEvery ?? 0;
  if (!Number.isInteger(checkEvery) || checkEvery < 0) {
    throw new ArgumentError(`checkEvery must be a whole number >= 0, got ${checkEvery}`);
  }
  const shape = options.noise?.shape ?? options.shape;
  if (!shape) throw new ArgumentError("sample() needs a shape or an initial noise tensor");

  const flag = nonFiniteFlag();
  const ctx2 = batched ? catBatch(neg!, ctx!) : undefined;
  let x = noGrad(() => {
    const n = options.noise ?? randn(shape, generator ? { generator } : {});
    const x0 = scaleOp(n, sampler.initNoiseSigma);
    if (n !== options.noise) n.dispose();
    return x0;
  });
  const check = async (upTo: number) => {
    const bad = await firstNonFiniteStep(flag);
    if (bad >= 0) {
      throw new NonFiniteError(
        `The model's output held NaN or infinity at step ${bad + 1} of ${sampler.steps} ` +
          `(timestep ${sampler.timesteps[bad]}, after checking ${upTo} steps); check the model ` +
          "weights, f16 overflow and the inputs",
      );
    }
  };
  try {
    for (let i = 0; i < sampler.steps; i++) {
      const t = sampler.timesteps[i]!;
      let out: Tensor;
      if (batched) {
        // both halves scaled by c_in in the concatenation itself (two dispatches, no extra pass)
        const c = sampler.modelInputScale(i);
        const xin = noGrad(() => catBatch(x, x, c, c));
        try {
          out = await denoiser(xin, t, ctx2);
        } finally {
          xin.dispose();
        }
        markNonFinite(out, flag, i);
        const g = noGrad(() => guideBatched(out, gs));
        out.dispose();
        out = g;
      } else {
        const xin = noGrad(() => sampler.scaleModelInput(x, i));
        try {
          const c = await denoiser(xin, t, ctx);
          markNonFinite(c, flag, i);
          if (guided) {
            const u = await denoiser(xin, t, neg);
            markNonFinite(u, flag, i);
            out = noGrad(() => guide(u, c, gs));
            u.dispose();
            c.dispose();
          } else out = c;
        } finally {
          xin.dispose();
        }
      }
      const { prev, denoised } = noGrad(() => sampler.step(out, i, x));
      out.dispose();
      x.dispose();
      x = prev;
      try {
        await options.onStep?.({
          step: i,
          steps: sampler.steps,
          timestep: t,
          sigma: sampler.sigmas[i]!,
          sigmaNext: sampler.sigmas[i + 1]!,
          x,
          denoised,
        });
      } finally {
        denoised.dispose();
      }
      if (checkEvery > 0 && (i + 1) % checkEvery === 0 && i + 1 < sampler.steps) await check(i + 1);
    }
    await check(sampler.steps);
    return x;
  } catch (e) {
    x.dispose();
    throw e;
  } finally {
    flag.dispose();
    ctx2?.dispose();
    if (owned) sampler.dispose();
  }
}

/** The checked classifier-free guidance settings of a call. */
interface Guidance {
  /** The guidance scale. */
  gs: number;
  /** Whether a negative pass runs (scale other than 1). */
  guided: boolean;
  /** Whether the two passes run as one batch of twice the size. */
  batched: boolean;
  /** The prompt's context. */
  ctx: Tensor | undefined;
  /** The negative prompt's context. */
  neg: Tensor | undefined;
}

/** Reads and checks the guidance options shared by both sampling paths. */
function guidanceOf(options: SampleOptions): Guidance {
  const gs = options.guidanceScale ?? 1;
  if (!Number.isFinite(gs)) throw new ArgumentError(`guidanceScale must be finite, got ${gs}`);
  const guided = gs !== 1;
  const ctx = options.context, neg = options.negativeContext;
  if (guided && !neg) {
    throw new ArgumentError(
      `Guidance scale ${gs} needs a negativeContext (e.g. the empty prompt's embedding); ` +
        "pass one or use guidanceScale 1",
    );
  }
  const batched = guided && (options.batchGuidance ?? true) && ctx !== undefined &&
    neg !== undefined && ctx.shape.join() === neg.shape.join();
  if (guided && (options.batchGuidance ?? true) && !batched) {
    throw new ShapeError(
      `Batched guidance needs context and negativeContext of one shape, got ${
        ctx ? fmtShape(ctx.shape) : "none"
      } and ${neg ? fmtShape(neg.shape) : "none"}; pass both or set batchGuidance: false`,
    );
  }
  return { gs, guided, batched, ctx, neg };
}

/** The model call of one step with classifier-free guidance (batched or two calls). */
function guidedModel(
  denoiser: Denoiser,
  options: SampleOptions,
): { call: (xin: Tensor, t: number) => Promise<Tensor>; dispose: () => void } {
  const { gs, guided, batched, ctx, neg } = guidanceOf(options);
  const ctx2 = batched ? catBatch(neg!, ctx!) : undefined;
  const call = async (xin: Tensor, t: number): Promise<Tensor> => {
    if (!guided) return await denoiser(xin, t, ctx);
    if (batched) {
      using x2 = noGrad(() => catBatch(xin, xin));
      using out = await denoiser(x2, t, ctx2);
      return noGrad(() => guideBatched(out, gs));
    }
    using c = await denoiser(xin, t, ctx);
    using u = await denoiser(xin, t, neg);
    return noGrad(() => guide(u, c, gs));
  };
  return { call, dispose: () => ctx2?.dispose() };
}

/**
 * The k-diffusion path of `sample`: sigmas from the named schedule, the model wrapped as a
 * denoiser `D(x, sigma) = c_skip x + c_out model(x / sqrt(sigma^2 + 1), t(sigma))` with `t(sigma)`
 * the log-linear inverse of the training sigmas (k-diffusion's `DiscreteEpsDDPMDenoiser`), and
 * the initial noise scaled by the first sigma.
 */
async function sampleK(
  denoiser: Denoiser,
  choice: SamplerChoice,
  options: SampleOptions,
): Promise<Tensor> {
  const schedule = options.schedule ?? createSchedule();
  const steps = options.steps ?? 25;
  checkSteps(steps, schedule.trainSteps);
  const prediction = checkName(options.prediction ?? "epsilon", PREDICTIONS, "prediction type");
  const full = sigmaSchedule(choice.schedule, steps, { schedule });
  const init = options.initLatent, mask = options.mask;
  const strength = options.strength ?? 1;
  if (!(strength >= 0 && strength <= 1)) {
    throw new ArgumentError(`The img2img strength must be from 0 to 1, got ${strength}`);
  }
  if (mask && !init) throw new ArgumentError("An inpainting mask needs an initLatent");
  if (strength < 1 && !init) {
    throw new ArgumentError(`Strength ${strength} needs an initLatent (img2img); or use 1`);
  }
  const shape = options.noise?.shape ?? options.shape ?? init?.shape;
  if (!shape) throw new ArgumentError("sample() needs a shape or an initial noise tensor");
  if (init && init.shape.join() !== shape.join()) {
    throw new ShapeError(
      `The initLatent ${fmtShape(init.shape)} and the sample ${
        fmtShape(shape)
      } must have one shape`,
    );
  }
  if (mask) {
    const ok = mask.shape.length === shape.length &&
      mask.shape.every((d, i) => d === 1 || d === shape[i]) &&
      mask.shape.slice(2).join() === shape.slice(2).join();
    if (!ok) {
      throw new ShapeError(
        `The mask ${fmtShape(mask.shape)} does not fit the latents ${fmtShape(shape)}; give a ` +
          `mask of the image's size (latents [.., .., ${shape.slice(2).join(", ")}])`,
      );
    }
  }
  if (init && strength === 0) return noGrad(() => scaleOp(init, 1));
  // A1111: sigmas[steps - t_enc - 1:], t_enc + 1 steps
  const sigmas = init && strength < 1
    ? full.slice(steps - Math.floor(Math.min(strength, 0.999) * steps) - 1)
    : full;
  const checkEvery = options.checkEvery ?? 0;
  if (!Number.isInteger(checkEvery) || checkEvery < 0) {
    throw new ArgumentError(`checkEvery must be a whole number >= 0, got ${checkEvery}`);
  }
  const generator = options.generator;
  const model = guidedModel(denoiser, options);
  const flag = nonFiniteFlag();
  let step = 0;
  const check = async (upTo: number) => {
    const bad = await firstNonFiniteStep(flag);
    if (bad >= 0) {
      throw new NonFiniteError(
        `The model's output held NaN or infinity at step ${bad + 1} of ${sigmas.length - 1} ` +
          `(sigma ${sigmas[bad]}, after checking ${upTo} steps); check the model weights, f16 ` +
          "overflow and the inputs",
      );
    }
  };
  const x0 = noGrad(() => {
    const n = options.noise ?? randn(shape, generator ? { generator } : {});
    const x = init && strength < 1
      ? combine(n, [[init, 1], [n, sigmas[0]!]])
      : scaleOp(n, sigmas[0]!);
    if (n !== options.noise) n.dispose();
    return x;
  });
  try {
    const x = await kSampler(choice.sampler)(
      async (x, sigma) => {
        const c = 1 / Math.sqrt(sigma * sigma + 1);
        using xin = noGrad(() => scaleOp(x, c));
        using out = await model.call(xin, schedule.sigmaToT(sigma));
        markNonFinite(out, flag, step);
        const [a, b] = sigmaDenoiseCoefs(prediction, sigma);
        const d = noGrad(() => combine(x, [[x, a], [out, b]]));
        if (!mask || !init) return d;
        // init + mask (D - init)
        return noGrad(() => {
          using diff = sub(d, init);
          using md = mul(diff, mask);
          d.dispose();
          return add(init, md);
        });
      },
      x0,
      sigmas,
      {
        ...(options.noiseSource ? { noise: options.noiseSource } : {}),
        ...(generator ? { generator } : {}),
        ...(options.eta !== undefined ? { eta: options.eta } : {}),
        onStep: async (info) => {
          step = info.step + 1;
          await options.onStep?.({
            step: info.step,
            steps: sigmas.length - 1,
            timestep: schedule.sigmaToT(info.sigma),
            sigma: info.sigma,
            sigmaNext: info.sigmaNext,
            x: info.x,
            denoised: info.denoised,
          });
          if (checkEvery > 0 && step % checkEvery === 0 && step < sigmas.length - 1) {
            await check(step);
          }
        },
      },
    );
    try {
      await check(sigmas.length - 1);
    } catch (e) {
      x.dispose();
      throw e;
    }
    return x;
  } finally {
    x0.dispose();
    flag.dispose();
    model.dispose();
  }
}
