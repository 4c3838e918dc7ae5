/**
 * `--save-state` / `--resume`: a state folder with the trained weights (`weights.safetensors`),
 * the optimizer's moments (`optimizer.safetensors`) and `train_state.json` (kohya's
 * `current_epoch` and `current_step`, plus the optimizer step, the stepper's noise-stream
 * position and the data loader's position), written atomically as one folder.
 *
 * @module
 */
import { join } from "node:path";
import type { AdamW, AdamWState } from "../ops/adamw.ts";
import type { Tensor } from "../ops/tensor.ts";
import {
  loadTensor,
  SafetensorsReader,
  serializeSafetensors,
  toSafetensorsInputs,
} from "../nn/safetensors.ts";
import { writeFolderAtomic } from "./atomic_fs.ts";
import type { LoaderPosition } from "./data_loader.ts";
import { ConfigError } from "./errors.ts";
import type { StepperState } from "./train_step.ts";

/** The JSON part of a state folder. */
export interface TrainState {
  /** Epoch (kohya's key; 1-based, the epoch the next batch belongs to). */
  current_epoch: number;
  /** Optimizer steps done (kohya's key). */
  current_step: number;
  /** The stepper's position. */
  stepper: StepperState;
  /** The data loader's position. */
  loader: LoaderPosition;
  /** Names of the saved weights, in the optimizer's parameter order. */
  params: string[];
  /** Any further settings the trainer keeps (e.g. the seed, for a check on resume). */
  extra?: Record<string, unknown>;
}

/** A state read back: GPU tensors to put in place, and the JSON. */
export interface LoadedTrainState {
  /** The weights by name (new tensors; adopt them with `Module.loadStateDict`). */
  weights: Map<string, Tensor>;
  /** The optimizer moments and step (for `AdamW.loadState`). */
  optimizer: AdamWState;
  /** The JSON part. */
  state: TrainState;
}

/**
 * Writes a state folder in one atomic step. `weights` must list the optimizer's parameters in its
 * order; `extraFiles` (e.g. an EMA of the weights) go into the same folder.
 *
 * @example
 * ```ts ignore
 * await saveTrainState("out/dog-step00000100-state", weights, optimizer, state);
 * ```
 */
export async function saveTrainState(
  dir: string,
  weights: ReadonlyMap<string, Tensor>,
  optimizer: AdamW,
  state: Omit<TrainState, "params">,
  extraFiles: Readonly<Record<string, Uint8Array>> = {},
): Promise<void> {
  const names = [...weights.keys()];
  const opt = optimizer.state();
  if (names.length !== opt.m.length) {
    throw new ConfigError(
      `saveTrainState got ${names.length} weights for an optimizer of ${opt.m.length} parameters`,
    );
  }
  const moments = new Map<string, Tensor>();
  opt.m.forEach((t, i) => moments.set(`m.${i}`, t));
  opt.v.forEach((t, i) => moments.set(`v.${i}`, t));
  const json: TrainState = { ...state, params: names };
  await writeFolderAtomic(dir, {
    "weights.safetensors": serializeSafetensors(await toSafetensorsInputs(weights)),
    "optimizer.safetensors": serializeSafetensors(await toSafetensorsInputs(moments), {
      step: String(opt.step),
    }),
    "train_state.json": JSON.stringify(json, null, 2) + "\n",
    ...extraFiles,
  });
}

/**
 * The bytes of file `name` of a state folder; a missing one is a ConfigError naming it.
 *
 * @example
 * ```ts ignore
 * const bytes = await readStateFile("out/dog-step00000100-state", "weights.safetensors");
 * ```
 */
export async function readStateFile(dir: string, name: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(join(dir, name));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(
        `The state folder ${dir} has no ${name}; pass a folder written by --save-state`,
      );
    }
    throw e;
  }
}

/**
 * Reads a state folder written by `saveTrainState`.
 *
 * @example
 * ```ts ignore
 * const { weights, optimizer, state } = await readTrainState("out/dog-step00000100-state");
 * ```
 */
export async function readTrainState(dir: string): Promise<LoadedTrainState> {
  let state: TrainState;
  try {
    state = JSON.parse(new TextDecoder().decode(await readStateFile(dir, "train_state.json")));
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new ConfigError(`${join(dir, "train_state.json")} is not valid JSON (${e.message})`);
    }
    throw e;
  }
  using w = await SafetensorsReader.fromBytes(await readStateFile(dir, "weights.safetensors"));
  using o = await SafetensorsReader.fromBytes(await readStateFile(dir, "optimizer.safetensors"));
  const weights = new Map<string, Tensor>();
  for (const name of state.params) weights.set(name, await loadTensor(w, name));
  const m: Tensor[] = [], v: Tensor[] = [];
  for (let i = 0; i < state.params.length; i++) {
    m.push(await loadTensor(o, `m.${i}`));
    v.push(await loadTensor(o, `v.${i}`));
  }
  const step = Number(o.metadata.step ?? NaN);
  if (!Number.isInteger(step)) {
    throw new ConfigError(`${join(dir, "optimizer.safetensors")} has no step in its metadata`);
  }
  return { weights, optimizer: { step, m, v }, state };
}
