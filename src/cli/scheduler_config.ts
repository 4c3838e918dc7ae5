/**
 * A diffusers folder's `scheduler/scheduler_config.json` turned into sampler options: the
 * training noise schedule and what the model predicts (epsilon or v). What denoise cannot honour
 * (x0-prediction, custom `trained_betas`, zero-terminal-SNR rescaling) is an error, never
 * ignored.
 *
 * @module
 */
import { createSchedule } from "../schedule/schedules.ts";
import { BETA_SCHEDULES } from "../schedule/schedules.ts";
import { type Prediction, PREDICTIONS, type SamplerOptions } from "../schedule/sampler.ts";
import { DenoiseError } from "../ops/errors.ts";
import { quote } from "../nn/_untrusted.ts";

/** A scheduler config is malformed or asks for something denoise does not support. */
export class SchedulerConfigError extends DenoiseError {}

function field<T>(
  json: Record<string, unknown>,
  key: string,
  ok: (v: unknown) => v is T,
  want: string,
  file: string,
): T | undefined {
  const v = json[key];
  if (v === undefined || v === null) return undefined;
  if (!ok(v)) {
    throw new SchedulerConfigError(
      `The scheduler config ${quote(file, 200)} has ${key} ${quote(v)}, but it must be ${want}; ` +
        "fix the file or remove the field to use the default",
    );
  }
  return v;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isPositive = (v: unknown): v is number => typeof v === "number" && v > 0 && v < 1;
const isSteps = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= 2 && v <= 100_000;
const isBoolean = (v: unknown): v is boolean => typeof v === "boolean";

/**
 * Converts a parsed `scheduler_config.json` into sampler options. Missing fields take the
 * diffusers defaults (`prediction_type` epsilon; the beta schedule of SD 1.x where absent).
 * `file` names the config in errors.
 *
 * @example
 * ```ts
 * import { schedulerOptionsFromDiffusers } from "./scheduler_config.ts";
 * const o = schedulerOptionsFromDiffusers({ prediction_type: "v_prediction" }, "scheduler.json");
 * console.log(o.prediction); // "v_prediction"
 * ```
 */
export function schedulerOptionsFromDiffusers(json: unknown, file: string): SamplerOptions {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new SchedulerConfigError(
      `The scheduler config ${quote(file, 200)} is ${
        json === null ? "null" : Array.isArray(json) ? "an array" : `a ${typeof json}`
      }, not a JSON object; fix it or remove the scheduler folder to use SD 1.x defaults`,
    );
  }
  const c = json as Record<string, unknown>;
  const prediction = field(c, "prediction_type", isString, "a string", file) ?? "epsilon";
  if (!(PREDICTIONS as readonly string[]).includes(prediction)) {
    throw new SchedulerConfigError(
      `The scheduler config ${quote(file, 200)} has prediction_type ${
        quote(prediction)
      }; denoise ` +
        `samples models that predict ${PREDICTIONS.join(" or ")}, so this model cannot be used`,
    );
  }
  if (field(c, "trained_betas", Array.isArray, "a list", file) !== undefined) {
    throw new SchedulerConfigError(
      `The scheduler config ${
        quote(file, 200)
      } lists trained_betas, which denoise does not support; ` +
        "use a model with a named beta_schedule",
    );
  }
  if (field(c, "rescale_betas_zero_snr", isBoolean, "true or false", file) === true) {
    throw new SchedulerConfigError(
      `The scheduler config ${
        quote(file, 200)
      } sets rescale_betas_zero_snr, which denoise does not ` +
        "support; use a model trained without zero-terminal-SNR rescaling",
    );
  }
  const betaSchedule = field(c, "beta_schedule", isString, "a string", file);
  if (betaSchedule !== undefined && !(BETA_SCHEDULES as readonly string[]).includes(betaSchedule)) {
    throw new SchedulerConfigError(
      `The scheduler config ${quote(file, 200)} has beta_schedule ${
        quote(betaSchedule)
      }; denoise ` +
        `supports ${BETA_SCHEDULES.join(", ")}`,
    );
  }
  const betaStart = field(c, "beta_start", isPositive, "a number between 0 and 1", file);
  const betaEnd = field(c, "beta_end", isPositive, "a number between 0 and 1", file);
  const trainSteps = field(c, "num_train_timesteps", isSteps, "a whole number >= 2", file);
  const schedule = createSchedule({
    ...(betaSchedule !== undefined ? { betaSchedule } : {}),
    ...(betaStart !== undefined ? { betaStart } : {}),
    ...(betaEnd !== undefined ? { betaEnd } : {}),
    ...(trainSteps !== undefined ? { trainSteps } : {}),
  });
  return { schedule, prediction: prediction as Prediction };
}

/**
 * Reads `<model>/scheduler/scheduler_config.json` of a diffusers folder. A folder without one,
 * or a single-file checkpoint, gets SD 1.x's (epsilon, scaled_linear 0.00085 .. 0.012, 1000).
 *
 * @example
 * ```ts ignore
 * import { readSchedulerOptions } from "./scheduler_config.ts";
 * const { prediction, schedule } = await readSchedulerOptions("sd15");
 * ```
 */
export async function readSchedulerOptions(model: string): Promise<SamplerOptions> {
  const isFolder = await Deno.stat(model).then((s) => s.isDirectory, () => false);
  if (!isFolder) return {}; // a missing model is the loader's to report
  const file = `${model.replace(/[/\\]+$/, "")}/scheduler/scheduler_config.json`;
  let text: string;
  try {
    // a FIFO or a device would block the read forever
    if (!(await Deno.stat(file)).isFile) throw new Error("not a regular file");
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw new SchedulerConfigError(
      `Cannot read the scheduler config ${quote(file, 200)} (${quote((e as Error).message)})`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SchedulerConfigError(
      `The scheduler config ${quote(file, 200)} is not valid JSON (${
        quote((e as Error).message)
      }); fix it or remove the scheduler folder to use SD 1.x defaults`,
    );
  }
  return schedulerOptionsFromDiffusers(json, file);
}
