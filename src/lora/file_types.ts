/**
 * The shared, format-neutral form of a LoRA-like file once read: one entry per adapted module,
 * named by its diffusers module path. Readers of every family (kohya, PEFT / diffusers,
 * LyCORIS LoHa / LoKr / Tucker / full / DoRA) produce it; adapters, merge and composition consume it.
 *
 * @module
 */

/** A tensor held on the CPU: row-major f32 data with its shape. */
export interface HostTensor {
  /** Dimensions, outermost first (e.g. `[out, in, k, k]`). */
  shape: number[];
  /** Row-major values; `data.length` is the product of `shape`. */
  data: Float32Array;
}

/** Which model a module belongs to. */
export type LoraComponent = "unet" | "text_encoder";

/** The file family an entry or a file was read from. */
export type LoraFamily = "kohya" | "peft" | "lycoris";

/** How an entry's weight delta is represented. */
export type LoraEntryKind =
  | "lora" // down/up (optionally Tucker `mid`): delta = scale * up @ down
  | "loha"
  | "lokr"
  | "full" // `diff` / `diff_b`
  | "norm"; // only w_norm / b_norm

/** One adapted module as read from a file. */
export interface LoraEntry {
  /** Which model the module lives in. */
  component: LoraComponent;
  /**
   * The module's diffusers path inside that model, e.g.
   * `down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q` (U-Net) or
   * `text_model.encoder.layers.0.self_attn.q_proj` (text encoder).
   */
  path: string;
  /** How the delta is stored. */
  kind: LoraEntryKind;
  /**
   * The adapted module's weight shape (`[out, in]`, `[out, in, k, k]` or `[channels]`), set by
   * the readers; LoHa and LoKr need it to shape a conv delta.
   */
  moduleShape?: number[];
  /** Low-rank down `[r, in]` or `[r, in, k, k]` (kind "lora"). */
  down?: HostTensor;
  /** Low-rank up `[out, r]` or `[out, r, 1, 1]` (kind "lora"). */
  up?: HostTensor;
  /** Tucker core `[r, r, k, k]` (kind "lora", LyCORIS `lora_mid`). */
  mid?: HostTensor;
  /** The alpha as stored; `undefined` means the file had none (scale 1). */
  alpha?: number;
  /** Every other named tensor of the entry, by its suffix (`hada_w1_a`, `lokr_w1`, `diff`, ...). */
  tensors: Record<string, HostTensor>;
  /** Per-channel weight delta of a norm (LyCORIS `w_norm`), when present. */
  wNorm?: HostTensor;
  /** Per-channel bias delta of a norm (LyCORIS `b_norm`), when present. */
  bNorm?: HostTensor;
}

/** A whole file, read and matched against a model. */
export interface LoraFileContents {
  /** The family the keys came from. */
  family: LoraFamily;
  /** Entries, one per adapted module. */
  entries: LoraEntry[];
  /** The safetensors `__metadata__` strings (empty when absent). */
  metadata: Record<string, string>;
}
