/**
 * Cached text-encoder outputs (kohya's `--cache-text-encoder-outputs`): when the text encoder is
 * not trained, each distinct caption is encoded once and its context reused. Captions that vary
 * with augmentation simply add entries.
 *
 * @module
 */

// captions: B -> [B, T, D] values
/** Encodes captions to their context values, `[B, T, D]` row-major. */
export type TextEncoderFn = (captions: readonly string[]) => Promise<Float32Array>;

/**
 * Context by caption, computed once.
 *
 * @example
 * ```ts ignore
 * const cache = new TextEncodingCache(encodeCaptions, 77 * 768);
 * const ctx = await cache.encode(batch.captions); // Float32Array of B * 77 * 768
 * ```
 */
export class TextEncodingCache {
  readonly #encode: TextEncoderFn;
  readonly #per: number;
  readonly #memory = new Map<string, Float32Array>();
  /** Captions encoded so far (cache misses). */
  encoded = 0;

  /** `valuesPerCaption` is T * D. */
  constructor(encode: TextEncoderFn, valuesPerCaption: number) {
    this.#encode = encode;
    this.#per = valuesPerCaption;
  }

  /** The contexts of `captions`, encoding only the new ones (in one batch). */
  async encode(captions: readonly string[]): Promise<Float32Array> {
    const missing = [...new Set(captions.filter((c) => !this.#memory.has(c)))];
    if (missing.length > 0) {
      const values = await this.#encode(missing);
      missing.forEach((c, i) => {
        this.#memory.set(c, values.slice(i * this.#per, (i + 1) * this.#per));
      });
      this.encoded += missing.length;
    }
    const out = new Float32Array(captions.length * this.#per);
    captions.forEach((c, i) => out.set(this.#memory.get(c)!, i * this.#per));
    return out;
  }
}
