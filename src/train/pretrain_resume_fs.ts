/**
 * Where a pretraining run continues from (`--resume`): reads a state folder that `mod.ts
 * pretrain` saved and checks that it was made with the same seed, size, batch size and image
 * side, since the image stream and the noise are pure functions of them.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import type { PretrainOptions } from "./pretrain_options.ts";
import { type LoadedTrainState, readTrainState } from "./train_state_fs.ts";

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
}

/** A state folder read for `--resume`, with the stage it continues. */
export interface PretrainResume {
  /** The trainer's state: weights, optimizer, counters. */
  state: LoadedTrainState;
  /** The pretraining fields of its `extra`. */
  extra: PretrainStateExtra;
}

/**
 * Reads `o.resume` (none: null); a folder from another command, or one saved with a different
 * seed, size, batch size or image side, is a {@link ConfigError} saying what to pass.
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
  return { state, extra: e };
}
