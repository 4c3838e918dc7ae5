/**
 * Noise schedules, training targets and samplers: `scaled_linear` / `linear` / `squaredcos_cap_v2`
 * schedules, diffusers' timestep spacings, Karras sigmas, forward noising with epsilon and v
 * targets, min-SNR weights and offset noise, and the DDPM, DDIM, Euler, Euler ancestral and
 * DPM++ 2M (Karras) samplers behind one interface, with a sampling loop that does
 * classifier-free guidance; plus the k-diffusion samplers (ComfyUI's 15, AUTOMATIC1111's labels)
 * over ComfyUI's sigma schedules, with an optional noise source.
 *
 * @example
 * ```ts
 * import { getDevice, scale } from "../ops/mod.ts";
 * import { createSampler, sample } from "./mod.ts";
 * await getDevice();
 * console.log(createSampler("dpmpp_2m_karras", 25).sigmas[0]); // 14.6146
 * // any denoiser (x, t, context) -> prediction; here one that predicts zero noise
 * const x = await sample((x) => scale(x, 0), {
 *   shape: [1, 4, 8, 8],
 *   sampler: "dpmpp_2m_karras",
 *   steps: 10,
 *   seed: 42,
 * });
 * console.log(x.shape);
 * ```
 *
 * @module
 */
export {
  BETA_SCHEDULES,
  type BetaSchedule,
  createSchedule,
  linspace,
  NoiseSchedule,
  type ScheduleOptions,
} from "./schedules.ts";
export {
  roundHalfEven,
  spacedTimesteps,
  type SpacingOptions,
  type SpacingRule,
  TIMESTEP_SPACINGS,
  type TimestepSpacing,
} from "./spacing.ts";
export { karrasSigmas } from "./karras.ts";
export * from "./training.ts";
export {
  NonFiniteError,
  type Prediction,
  PREDICTIONS,
  type Sampler,
  SAMPLER_NAMES,
  type SamplerName,
  type SamplerOptions,
  sigmaDenoiseCoefs,
  SigmaSampler,
  type StepResult,
  vpCoefs,
  VpSampler,
} from "./sampler.ts";
export { DDPMSampler } from "./ddpm.ts";
export { DDIMSampler } from "./ddim.ts";
export { EulerSampler } from "./euler.ts";
export { ancestralStep, EulerAncestralSampler } from "./euler_ancestral.ts";
export { DPMpp2MSampler } from "./dpmpp_2m.ts";
export { guide, guideBatched, guideRef } from "./guidance.ts";
export {
  SIGMA_SCHEDULES,
  sigmaSchedule,
  type SigmaScheduleName,
  type SigmaScheduleOptions,
} from "./sigma_schedules.ts";
export { betaCdf, betaPpf } from "./beta_dist.ts";
export {
  A1111_SAMPLER_LABELS,
  K_SAMPLER_NAMES,
  kSampler,
  type KSamplerName,
  resolveSamplerLabel,
  type SamplerChoice,
  STOCHASTIC_K_SAMPLERS,
} from "./k_samplers.ts";
export {
  ancestralSigmas,
  type KSampler,
  type KSamplerOptions,
  type KStepInfo,
  type NoiseRequest,
  type NoiseSource,
  type SigmaDenoiser,
} from "./k/k_sampler.ts";
export { lmsCoefficient } from "./k/lms.ts";
export { type SolverType } from "./k/dpmpp_2m_sde.ts";
export { uniPcCoefficients, type UniPcVariant } from "./k/unipc.ts";
export {
  createSampler,
  type Denoiser,
  kChoice,
  sample,
  type SampleOptions,
  type StepInfo,
} from "./sample.ts";
