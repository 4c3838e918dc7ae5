/**
 * The original LDM YAML config of a single-file checkpoint (`v1-inference.yaml` and kin, what
 * diffusers reads as `original_config`): U-Net, VAE and text-encoder settings, the noise schedule
 * and the prediction type, checked against what the checkpoint's tensors determine so that a
 * mismatched config is an error naming the value, never a silently wrong model.
 *
 * @module
 */
import { DenoiseError } from "../ops/errors.ts";
import type { UNetConfig } from "./unet.ts";
import type { VaeConfig } from "./vae.ts";
import type { YamlValue } from "./yaml_subset.ts";

/** An LDM config that is unusable or contradicts the checkpoint. */
export class LdmConfigError extends DenoiseError {}

/** What an LDM config sets. */
export interface LdmSettings {
  /** U-Net fields. */
  unet: Partial<UNetConfig>;
  /** VAE fields. */
  vae: Partial<VaeConfig>;
  /** `linear_start`, `linear_end`, `timesteps` (LDM's "linear" is diffusers' scaled_linear). */
  schedule: { betaStart?: number; betaEnd?: number; trainSteps?: number };
  /** `parameterization`: `eps` -> epsilon, `v` -> v_prediction. */
  prediction?: "epsilon" | "v_prediction";
  /** The text encoder's hidden state from the end (OpenCLIP `layer: penultimate` is 2). */
  clipSkip?: number;
  /** Where each field came from, for messages (e.g. `unet_config.params.context_dim`). */
  sources: Map<string, string>;
}

type Obj = { [k: string]: YamlValue };
const isObj = (v: YamlValue | undefined): v is Obj =>
  v !== null && v !== undefined && typeof v === "object" && !Array.isArray(v);

/**
 * Reads the settings of a parsed LDM config (`model.params...`); a config without
 * `model.params` is an `LdmConfigError`.
 *
 * @example
 * ```ts
 * import { parseYaml } from "./yaml_subset.ts";
 * import { ldmSettings } from "./ldm_config.ts";
 * const s = ldmSettings(parseYaml("model:\n  params:\n    parameterization: v\n"), "x.yaml");
 * console.log(s.prediction); // v_prediction
 * ```
 */
export function ldmSettings(yaml: YamlValue, name: string): LdmSettings {
  const model = isObj(yaml) ? yaml["model"] : undefined;
  const params = isObj(model) ? model["params"] : undefined;
  if (!isObj(params)) {
    throw new LdmConfigError(
      `${name} has no model.params section; give the LDM config of this checkpoint (such as ` +
        "v1-inference.yaml)",
    );
  }
  const sources = new Map<string, string>();
  const num = (o: YamlValue | undefined, key: string, path: string): number | undefined => {
    const v = isObj(o) ? o[key] : undefined;
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new LdmConfigError(
        `${name}: ${path}.${key} must be a number, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  };
  const nums = (o: YamlValue | undefined, key: string, path: string): number[] | undefined => {
    const v = isObj(o) ? o[key] : undefined;
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "number")) {
      throw new LdmConfigError(`${name}: ${path}.${key} must be a list of numbers`);
    }
    return v as number[];
  };
  const s: LdmSettings = { unet: {}, vae: {}, schedule: {}, sources };
  const set = <T>(obj: Record<string, unknown>, field: string, v: T | undefined, src: string) => {
    if (v === undefined) return;
    obj[field] = v;
    sources.set(field, src);
  };
  const P = "model.params";
  set(s.schedule, "betaStart", num(params, "linear_start", P), `${P}.linear_start`);
  set(s.schedule, "betaEnd", num(params, "linear_end", P), `${P}.linear_end`);
  set(s.schedule, "trainSteps", num(params, "timesteps", P), `${P}.timesteps`);
  const param = params["parameterization"];
  if (param !== undefined && param !== "eps" && param !== "v") {
    throw new LdmConfigError(
      `${name}: ${P}.parameterization is ${JSON.stringify(param)}; this loader knows "eps" and "v"`,
    );
  }
  if (param === "v") s.prediction = "v_prediction";
  else if (param === "eps") s.prediction = "epsilon";
  const imageSize = num(params, "image_size", P);
  set(s.unet, "sampleSize", imageSize, `${P}.image_size`);
  const sf = num(params, "scale_factor", P);
  set(s.vae, "scalingFactor", sf, `${P}.scale_factor`);

  const uc = isObj(params["unet_config"]) ? params["unet_config"]["params"] : undefined;
  const U = `${P}.unet_config.params`;
  if (isObj(uc)) {
    set(s.unet, "inChannels", num(uc, "in_channels", U), `${U}.in_channels`);
    set(s.unet, "outChannels", num(uc, "out_channels", U), `${U}.out_channels`);
    set(s.unet, "layersPerBlock", num(uc, "num_res_blocks", U), `${U}.num_res_blocks`);
    set(s.unet, "crossAttentionDim", num(uc, "context_dim", U), `${U}.context_dim`);
    set(
      s.unet,
      "transformerLayersPerBlock",
      num(uc, "transformer_depth", U),
      `${U}.transformer_depth`,
    );
    const mc = num(uc, "model_channels", U), mult = nums(uc, "channel_mult", U);
    const ch = mc !== undefined && mult ? mult.map((m) => m * mc) : undefined;
    set(s.unet, "blockOutChannels", ch, `${U}.model_channels x channel_mult`);
    const att = nums(uc, "attention_resolutions", U);
    if (att && mult) {
      const has = mult.map((_, i) => att.includes(2 ** i));
      set(
        s.unet,
        "downBlockTypes",
        has.map((a) => (a ? "CrossAttnDownBlock2D" : "DownBlock2D")),
        `${U}.attention_resolutions`,
      );
      set(
        s.unet,
        "upBlockTypes",
        [...has].reverse().map((a) => (a ? "CrossAttnUpBlock2D" : "UpBlock2D")),
        `${U}.attention_resolutions`,
      );
    }
    const heads = num(uc, "num_heads", U), headCh = num(uc, "num_head_channels", U);
    if (headCh !== undefined && headCh > 0 && ch) {
      set(s.unet, "attentionHeads", ch.map((c) => c / headCh), `${U}.num_head_channels`);
    } else if (heads !== undefined && heads > 0) {
      set(s.unet, "attentionHeads", heads, `${U}.num_heads`);
    }
  }
  const dd = isObj(params["first_stage_config"]) && isObj(params["first_stage_config"]["params"])
    ? params["first_stage_config"]["params"]["ddconfig"]
    : undefined;
  const D = `${P}.first_stage_config.params.ddconfig`;
  if (isObj(dd)) {
    set(s.vae, "inChannels", num(dd, "in_channels", D), `${D}.in_channels`);
    set(s.vae, "outChannels", num(dd, "out_ch", D), `${D}.out_ch`);
    set(s.vae, "latentChannels", num(dd, "z_channels", D), `${D}.z_channels`);
    set(s.vae, "layersPerBlock", num(dd, "num_res_blocks", D), `${D}.num_res_blocks`);
    const c = num(dd, "ch", D), m = nums(dd, "ch_mult", D);
    set(
      s.vae,
      "blockOutChannels",
      c !== undefined && m ? m.map((x) => x * c) : undefined,
      `${D}.ch x ch_mult`,
    );
  }
  const cs = isObj(params["cond_stage_config"]) ? params["cond_stage_config"]["params"] : undefined;
  if (isObj(cs) && cs["layer"] === "penultimate") {
    s.clipSkip = 2;
    sources.set("clipSkip", `${P}.cond_stage_config.params.layer`);
  }
  return s;
}

/**
 * Checks a config's fields against those the checkpoint's tensors determine; the first
 * contradiction is an `LdmConfigError` naming the YAML path and both values.
 */
export function checkAgainstTensors(
  settings: LdmSettings,
  inferred: { unet: Partial<UNetConfig>; vae: Partial<VaeConfig> },
  name: string,
): void {
  for (const part of ["unet", "vae"] as const) {
    const fromYaml = settings[part] as Record<string, unknown>;
    const fromTensors = inferred[part] as Record<string, unknown>;
    for (const [k, v] of Object.entries(fromYaml)) {
      const t = fromTensors[k];
      if (t === undefined) continue;
      if (JSON.stringify(t) !== JSON.stringify(v)) {
        throw new LdmConfigError(
          `${name}: ${settings.sources.get(k) ?? k} gives ${part === "unet" ? "U-Net" : "VAE"} ` +
            `${k} = ${JSON.stringify(v)}, but the checkpoint's tensors have ${
              JSON.stringify(t)
            }; ` +
            "use the config that belongs to this checkpoint",
        );
      }
    }
  }
}
