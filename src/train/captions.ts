/**
 * Caption augmentation with kohya's rules (`BaseDataset.process_caption`): prefix and suffix,
 * caption dropout, first line only, then, when shuffling or dropping tags, split on the separator,
 * keep the first `keepTokens` (or the part before `keepTokensSeparator`) fixed, shuffle the rest,
 * drop tags, and join with ", ". Every random choice comes from the given `Rng`.
 *
 * @module
 */
import type { Rng } from "./random.ts";

/** Caption settings of a subset (kohya's names in camelCase). */
export interface CaptionOptions {
  /** Shuffle the tags after the kept ones (`shuffle_caption`). */
  shuffleCaption?: boolean;
  /** Tag separator (`caption_separator`, default ","). */
  captionSeparator?: string;
  /** Leading tags kept in place (`keep_tokens`). */
  keepTokens?: number;
  /** Separator ending the fixed part, and starting a fixed suffix (`keep_tokens_separator`). */
  keepTokensSeparator?: string;
  /** Text put before the caption with a space (`caption_prefix`). */
  captionPrefix?: string;
  /** Text put after the caption with a space (`caption_suffix`). */
  captionSuffix?: string;
  /** Probability of an empty caption (`caption_dropout_rate`). */
  captionDropoutRate?: number;
  /** Empty captions every N epochs (`caption_dropout_every_n_epochs`). */
  captionDropoutEveryNEpochs?: number;
  /** Probability of dropping each non-fixed tag (`caption_tag_dropout_rate`). */
  captionTagDropoutRate?: number;
}

function splitTags(text: string, sep: string): string[] {
  return text.split(sep).map((t) => t.trim()).filter((t) => t !== "");
}

/**
 * The caption one sample sees this time (`epoch` counts from 1, as kohya's `current_epoch`).
 *
 * @example
 * ```ts
 * import { processCaption } from "./captions.ts";
 * import { Rng } from "./random.ts";
 * const c = processCaption("sks dog, grass, sun", { shuffleCaption: true, keepTokens: 1 }, new Rng(1));
 * console.log(c.startsWith("sks dog, ")); // true
 * ```
 */
export function processCaption(
  caption: string,
  options: CaptionOptions,
  rng: Rng,
  epoch = 1,
): string {
  if (options.captionPrefix) caption = `${options.captionPrefix} ${caption}`;
  if (options.captionSuffix) caption = `${caption} ${options.captionSuffix}`;
  const rate = options.captionDropoutRate ?? 0;
  const everyN = options.captionDropoutEveryNEpochs ?? 0;
  const dropped = (rate > 0 && rng.next() < rate) || (everyN > 0 && epoch % everyN === 0);
  if (dropped) return "";
  caption = caption.split("\n")[0]!;
  const shuffle = options.shuffleCaption ?? false;
  const tagRate = options.captionTagDropoutRate ?? 0;
  if (!shuffle && tagRate <= 0) return caption;
  const sep = options.captionSeparator ?? ",";
  let fixed: string[] = [], flex: string[], suffix: string[] = [];
  const kts = options.keepTokensSeparator;
  if (kts && caption.includes(kts)) {
    const at = caption.indexOf(kts);
    let flexPart = caption.slice(at + kts.length);
    fixed = splitTags(caption.slice(0, at), sep);
    const at2 = flexPart.indexOf(kts);
    if (at2 >= 0) {
      suffix = splitTags(flexPart.slice(at2 + kts.length), sep);
      flexPart = flexPart.slice(0, at2);
    }
    flex = splitTags(flexPart, sep);
  } else {
    const tokens = caption.trim().split(sep).map((t) => t.trim());
    const keep = options.keepTokens ?? 0;
    fixed = tokens.slice(0, keep);
    flex = tokens.slice(keep);
  }
  if (shuffle) flex = rng.shuffle(flex);
  if (tagRate > 0) flex = flex.filter(() => rng.next() >= tagRate);
  return [...fixed, ...flex, ...suffix].join(", ");
}
