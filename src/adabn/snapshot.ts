/**
 * The host-side form of adapted statistics: what is saved in a LoRA file and loaded back.
 *
 * @module
 */

/** How the statistics were estimated: one of the methods, or an estimate followed by online steps. */
export type AdabnMethod = "exact" | "online";

/**
 * When the statistics were adapted relative to LoRA training: "alone" (no LoRA), "before" (then
 * frozen while the LoRA trained), "during" (online at each training step), or both.
 */
export type AdabnMode = "alone" | "before" | "during" | "before-and-during";

/** One layer's statistics in one timestep band. */
export interface AdabnBandStatistics {
  /** Mean per channel. */
  mean: Float32Array;
  /** Population variance per channel (divided by the count, not count - 1). */
  variance: Float32Array;
  /** Values per channel the statistics cover (samples x height x width); 0: the base's. */
  count: number;
}

/** Every adapted statistic of a model, on the host. */
export interface AdabnSnapshot {
  /** Timestep band boundaries (one band: `[0, 1000]`). */
  bands: number[];
  /** When the statistics were adapted. */
  mode: AdabnMode;
  /** How: "exact", "online", "exact+online" or "online" after online training steps; null if never. */
  method: string | null;
  /** Per BatchNorm2d, by module path: its statistics per band. */
  layers: { path: string; bands: AdabnBandStatistics[] }[];
}
