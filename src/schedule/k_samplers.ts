/**
 * The k-diffusion samplers by ComfyUI's names, and AUTOMATIC1111's sampler labels
 * ("DPM++ 2M Karras") read as a sampler plus a sigma schedule.
 *
 * @module
 */
import { ArgumentError } from "../ops/errors.ts";
import { checkName } from "./schedules.ts";
import type { SigmaScheduleName } from "./sigma_schedules.ts";
import type { KSampler } from "./k/k_sampler.ts";
import { sampleEuler } from "./k/euler.ts";
import { sampleEulerAncestral } from "./k/euler_ancestral.ts";
import { sampleHeun } from "./k/heun.ts";
import { sampleDpm2 } from "./k/dpm2.ts";
import { sampleDpm2Ancestral } from "./k/dpm2_ancestral.ts";
import { sampleLms } from "./k/lms.ts";
import { sampleDpmpp2sAncestral } from "./k/dpmpp_2s_ancestral.ts";
import { sampleDpmppSde } from "./k/dpmpp_sde.ts";
import { sampleDpmpp2m } from "./k/dpmpp_2m.ts";
import { sampleDpmpp2mSde } from "./k/dpmpp_2m_sde.ts";
import { sampleDpmpp3mSde } from "./k/dpmpp_3m_sde.ts";
import { sampleUniPc } from "./k/unipc.ts";
import { sampleDdim } from "./k/ddim.ts";
import { sampleDdpm } from "./k/ddpm.ts";
import { sampleLcm } from "./k/lcm.ts";

/** ComfyUI's sampler names. */
export type KSamplerName =
  | "euler"
  | "euler_ancestral"
  | "heun"
  | "dpm_2"
  | "dpm_2_ancestral"
  | "lms"
  | "dpmpp_2s_ancestral"
  | "dpmpp_sde"
  | "dpmpp_2m"
  | "dpmpp_2m_sde"
  | "dpmpp_3m_sde"
  | "uni_pc"
  | "ddim"
  | "ddpm"
  | "lcm";

const TABLE: Record<KSamplerName, [KSampler, string, boolean]> = {
  // name: [sampler, AUTOMATIC1111 label, stochastic]
  euler: [sampleEuler, "Euler", false],
  euler_ancestral: [sampleEulerAncestral, "Euler a", true],
  heun: [sampleHeun, "Heun", false],
  dpm_2: [sampleDpm2, "DPM2", false],
  dpm_2_ancestral: [sampleDpm2Ancestral, "DPM2 a", true],
  lms: [sampleLms, "LMS", false],
  dpmpp_2s_ancestral: [sampleDpmpp2sAncestral, "DPM++ 2S a", true],
  dpmpp_sde: [sampleDpmppSde, "DPM++ SDE", true],
  dpmpp_2m: [sampleDpmpp2m, "DPM++ 2M", false],
  dpmpp_2m_sde: [sampleDpmpp2mSde, "DPM++ 2M SDE", true],
  dpmpp_3m_sde: [sampleDpmpp3mSde, "DPM++ 3M SDE", true],
  uni_pc: [sampleUniPc, "UniPC", false],
  ddim: [sampleDdim, "DDIM", false],
  ddpm: [sampleDdpm, "DDPM", true],
  lcm: [sampleLcm, "LCM", true],
};

/** Every k-diffusion sampler name, for messages and menus. */
export const K_SAMPLER_NAMES: readonly KSamplerName[] = Object.freeze(
  Object.keys(TABLE) as KSamplerName[],
);

/** The samplers that draw noise (they take `options.noise`). */
export const STOCHASTIC_K_SAMPLERS: readonly KSamplerName[] = Object.freeze(
  K_SAMPLER_NAMES.filter((n) => TABLE[n][2]),
);

/**
 * The sampler function of a ComfyUI sampler name (unknown names list the valid ones).
 *
 * @example
 * ```ts
 * import { kSampler } from "./k_samplers.ts";
 * console.log(typeof kSampler("dpmpp_2m_sde")); // function
 * ```
 */
export function kSampler(name: KSamplerName | string): KSampler {
  return TABLE[checkName(name, K_SAMPLER_NAMES, "sampler")][0];
}

/** A sampler and schedule named by an AUTOMATIC1111 label. */
export interface SamplerChoice {
  /** The sampler (ComfyUI's name). */
  sampler: KSamplerName;
  /** The sigma schedule the label implies (`normal` without a suffix). */
  schedule: SigmaScheduleName;
}

const SUFFIXES: readonly [string, SigmaScheduleName][] = [
  [" karras", "karras"],
  [" exponential", "exponential"],
];

/** AUTOMATIC1111's sampler labels, each with and without " Karras" / " Exponential". */
export const A1111_SAMPLER_LABELS: readonly string[] = Object.freeze(
  K_SAMPLER_NAMES.map((n) => TABLE[n][1]),
);

/**
 * Reads an AUTOMATIC1111 sampler label ("DPM++ 2M Karras", "Euler a"; any case) or a ComfyUI
 * sampler name as a sampler and a sigma schedule; unknown labels list the valid ones.
 *
 * @example
 * ```ts
 * import { resolveSamplerLabel } from "./k_samplers.ts";
 * console.log(resolveSamplerLabel("DPM++ 2M Karras")); // { sampler: "dpmpp_2m", schedule: "karras" }
 * ```
 */
export function resolveSamplerLabel(label: string): SamplerChoice {
  if ((K_SAMPLER_NAMES as readonly string[]).includes(label)) {
    return { sampler: label as KSamplerName, schedule: "normal" };
  }
  let base = label.trim().toLowerCase(), schedule: SigmaScheduleName = "normal";
  for (const [suffix, s] of SUFFIXES) {
    if (base.endsWith(suffix)) {
      base = base.slice(0, -suffix.length);
      schedule = s;
    }
  }
  const hit = K_SAMPLER_NAMES.find((n) => TABLE[n][1].toLowerCase() === base);
  if (hit) return { sampler: hit, schedule };
  throw new ArgumentError(
    `Unknown sampler "${label}"; use one of ${K_SAMPLER_NAMES.join(", ")} or an AUTOMATIC1111 ` +
      `label (${A1111_SAMPLER_LABELS.join(", ")}, optionally followed by Karras or Exponential)`,
  );
}
