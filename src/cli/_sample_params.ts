/**
 * `mod.ts sample`'s settings as AUTOMATIC1111 infotext fields and back: the sampler as A1111's
 * label plus `Schedule type`, and our exact sampler and schedule names in fields of our own so
 * that `--from-image` re-runs them exactly.
 *
 * @module
 */
import { SAMPLER_NAMES } from "../schedule/sampler.ts";
import { K_SAMPLER_NAMES, resolveSamplerLabel } from "../schedule/k_samplers.ts";
import type { InfoFields, Infotext } from "./_parameters.ts";

/** The settings an image records. */
export interface SampleSettings {
  /** Steps. */
  steps: number;
  /** Our sampler name or an A1111 label, as given. */
  sampler: string;
  /** The sigma schedule, if one was named. */
  schedule?: string | undefined;
  /** Guidance scale. */
  cfg: number;
  /** Seed. */
  seed: number;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** The model's name (file or folder name). */
  model: string;
  /** Clip skip (A1111 records it when above 1). */
  clipSkip?: number | undefined;
  /** img2img strength, when an init image was used. */
  strength?: number | undefined;
}

const SCHEDULE_LABELS: Record<string, string> = {
  normal: "Normal",
  karras: "Karras",
  exponential: "Exponential",
  sgm_uniform: "SGM Uniform",
  simple: "Simple",
  ddim_uniform: "DDIM",
  beta: "Beta",
};

const LEGACY: Record<string, [string, string]> = {
  ddpm: ["DDPM", "normal"],
  ddim: ["DDIM", "normal"],
  euler: ["Euler", "normal"],
  euler_a: ["Euler a", "normal"],
  dpmpp_2m: ["DPM++ 2M", "normal"],
  dpmpp_2m_karras: ["DPM++ 2M", "karras"],
};

/** The A1111 sampler label and schedule label of our settings. */
function a1111Sampler(sampler: string, schedule: string | undefined): [string, string] {
  let label: string, sched: string;
  if (LEGACY[sampler]) [label, sched] = LEGACY[sampler]!;
  else {
    const c = resolveSamplerLabel(sampler);
    sched = c.schedule;
    label = sampler.includes(" ") ? sampler.replace(/ (Karras|Exponential)$/iu, "") : sampler;
    if (!sampler.includes(" ")) {
      // a ComfyUI name: A1111's label for it
      label = ({
        euler: "Euler",
        euler_ancestral: "Euler a",
        heun: "Heun",
        dpm_2: "DPM2",
        dpm_2_ancestral: "DPM2 a",
        lms: "LMS",
        dpmpp_2s_ancestral: "DPM++ 2S a",
        dpmpp_sde: "DPM++ SDE",
        dpmpp_2m: "DPM++ 2M",
        dpmpp_2m_sde: "DPM++ 2M SDE",
        dpmpp_3m_sde: "DPM++ 3M SDE",
        uni_pc: "UniPC",
        ddim: "DDIM",
        ddpm: "DDPM",
        lcm: "LCM",
      } as Record<string, string>)[c.sampler]!;
    }
  }
  return [label, SCHEDULE_LABELS[schedule ?? sched] ?? "Automatic"];
}

/**
 * The infotext fields of a run, in A1111's order (`Steps, Sampler, Schedule type, CFG scale,
 * Seed, Size, Model, Clip skip, Denoising strength`), then ours.
 *
 * @example
 * ```ts
 * import { infotextFields } from "./_sample_params.ts";
 * const f = infotextFields({
 *   steps: 20, sampler: "dpmpp_2m_karras", cfg: 7, seed: 1, width: 512, height: 512, model: "sd15",
 * });
 * console.log(f[1], f[2]); // ["Sampler", "DPM++ 2M"] ["Schedule type", "Karras"]
 * ```
 */
export function infotextFields(s: SampleSettings): InfoFields {
  const [label, sched] = a1111Sampler(s.sampler, s.schedule);
  const f: InfoFields = [
    ["Steps", String(s.steps)],
    ["Sampler", label],
    ["Schedule type", sched],
    ["CFG scale", String(s.cfg)],
    ["Seed", String(s.seed)],
    ["Size", `${s.width}x${s.height}`],
    ["Model", s.model],
  ];
  if (s.clipSkip !== undefined && s.clipSkip > 1) f.push(["Clip skip", String(s.clipSkip)]);
  if (s.strength !== undefined) f.push(["Denoising strength", String(s.strength)]);
  f.push(["Denoise sampler", s.sampler]);
  if (s.schedule) f.push(["Denoise schedule", s.schedule]);
  return f;
}

/** `sample` option values (as the command line gives them) from an infotext. */
export interface SampleValuesFromImage {
  prompt: string;
  negative: string;
  steps?: string;
  cfg?: string;
  seed?: string;
  width?: string;
  height?: string;
  sampler?: string;
  schedule?: string;
  strength?: string;
  "clip-skip"?: string;
}

const SCHEDULE_FROM_LABEL: Record<string, string> = {
  ...Object.fromEntries(Object.entries(SCHEDULE_LABELS).map(([k, v]) => [v, k])),
  Uniform: "normal",
};

/**
 * The `sample` values an infotext records: ours when present (`Denoise sampler`,
 * `Denoise schedule`), else A1111's `Sampler` (old "DPM++ 2M Karras" labels too) and
 * `Schedule type` (`Automatic` keeps the sampler's own).
 */
export function valuesFromInfotext(info: Infotext): SampleValuesFromImage {
  const f = info.fields,
    out: SampleValuesFromImage = { prompt: info.prompt, negative: info.negative };
  const set = (k: keyof SampleValuesFromImage, field: string) => {
    const v = f.get(field);
    if (v !== undefined) out[k] = v;
  };
  set("steps", "Steps");
  set("cfg", "CFG scale");
  set("seed", "Seed");
  set("strength", "Denoising strength");
  set("clip-skip", "Clip skip");
  const size = /^(\d+)x(\d+)$/u.exec(f.get("Size") ?? "");
  if (size) [out.width, out.height] = [size[1]!, size[2]!];
  const ours = f.get("Denoise sampler");
  const known = [...SAMPLER_NAMES, ...K_SAMPLER_NAMES] as readonly string[];
  if (ours !== undefined && known.includes(ours)) {
    out.sampler = ours;
    set("schedule", "Denoise schedule");
    return out;
  }
  const label = f.get("Sampler");
  if (label !== undefined) {
    out.sampler = label;
    const sched = SCHEDULE_FROM_LABEL[f.get("Schedule type") ?? ""];
    if (sched) out.schedule = sched;
  }
  return out;
}
