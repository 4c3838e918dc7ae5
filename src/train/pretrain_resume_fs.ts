/**
 * Where a pretraining run continues from (`--resume`): reads a state folder that `mod.ts
 * pretrain` saved and checks that it was made with the same seed, size, batch size and image
 * side, since the image stream and the noise are pure functions of them, and, for the U-Net
 * stage, the same EMA decay (its average is read from `ema.safetensors`).
 *
 * @module
 */
import { join } from "node:path";
import { loadTensor, SafetensorsReader } from "../nn/safetensors.ts";
import type { Tensor } from "../ops/tensor.ts";
import type { EmaState } from "./ema.ts";
import { ConfigError } from "./errors.ts";
import type { PretrainOptions } from "./pretrain_options.ts";
import { type LoadedTrainState, readStateFile, readTrainState } from "./train_state_fs.ts";

/** The U-Net stage's EMA in a state folder: the averaged weights by the state's names. */
export const EMA_FILE = "ema.safetensors";

/** What a pretraining state folder records beside the trainer's state (its `extra`). */
export interface PretrainStateExtra {
  /** The stage the state continues. */
  stage: "vae" | "unet";
  /** The run's seed. */
  seed: number;
  /** The run's model size. */
  size: "mini" | "tiny";
  /** Images per step. */
  batchSize: number;
  /** Image side. */
  imageSize: number;
  /** The VAE's latent scaling factor so far. */
  scalingFactor: number;
  /** Wall seconds of the run so far. */
  wallSeconds: number;
  /** The U-Net stage's EMA decay (0 or absent: no EMA). */
  emaDecay?: number;
}

/** A state folder read for `--resume`, with the stage it continues. */
export interface PretrainResume {
  /** The trainer's state: weights, optimizer, counters. */
  state: LoadedTrainState;
  /** The pretraining fields of its `extra`. */
  extra: PretrainStateExtra;
  /** The U-Net stage's EMA (null without one). */
  ema: EmaState | null;
}

/**
 * Reads `o.resume` (none: null); a folder from another command, or one saved with a different
 * seed, size, batch size, image side or (U-Net stage) EMA decay, is a {@link ConfigError}
 * saying what to pass.
 *
 * @example
 * ```ts ignore
 * const r = await readPretrainResume(options, "mini", 32);
 * console.log(r?.extra.stage);
 * ```
 */
export async function readPretrainResume(
  o: PretrainOptions,
  size: "mini" | "tiny",
  side: number,
): Promise<PretrainResume | null> {
  if (!o.resume) return null;
  const state = await readTrainState(o.resume);
  const e = state.state.extra as unknown as PretrainStateExtra | undefined;
  if (!e || (e.stage !== "vae" && e.stage !== "unet")) {
    throw new ConfigError(
      `${o.resume} is not a pretraining state; pass a folder from mod.ts pretrain`,
    );
  }
  const want = { seed: o.seed, size, batchSize: o.batchSize, imageSize: side };
  for (const [k, v] of Object.entries(want) as [keyof typeof want, number | string][]) {
    if (e[k] !== v) {
      throw new ConfigError(
        `The state in ${o.resume} was saved with ${k} ${e[k]}, not ${v}; resume with the same ${k}`,
      );
    }
  }
  // a U-Net state at step 0 (saved when the VAE stage ended) has no average yet
  const unetStarted = e.stage === "unet" && state.state.current_step > 0;
  const saved = e.emaDecay ?? 0, decay = o.emaDecay ?? 0;
  if (unetStarted && saved !== decay) {
    throw new ConfigError(
      saved > 0
        ? `The state in ${o.resume} was saved with an EMA of decay ${saved}, not ${decay}; ` +
          `resume with --ema-decay ${saved}`
        : `The state in ${o.resume} was saved without an EMA; resume without --ema and --ema-decay`,
    );
  }
  const ema = unetStarted && saved > 0 ? await readEma(o.resume, state) : null;
  return { state, extra: e, ema };
}

/** The EMA saved in the state folder with `state`, which must be from the same step. */
async function readEma(dir: string, state: LoadedTrainState): Promise<EmaState> {
  using r = await SafetensorsReader.fromBytes(await readStateFile(dir, EMA_FILE));
  const updates = Number(r.metadata.updates), step = state.state.current_step;
  if (updates !== step) {
    throw new ConfigError(
      `${join(dir, EMA_FILE)} holds ${updates} EMA updates but the state is at step ${step}; ` +
        "its files come from different saves: resume from a state folder as mod.ts pretrain wrote it",
    );
  }
  const shadow: Tensor[] = [];
  for (const name of state.state.params) shadow.push(await loadTensor(r, name));
  return { updates, shadow };
}
