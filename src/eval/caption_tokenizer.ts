/**
 * The mini model's tokenizer: BPE learned from the caption grammar, trigger words included, so
 * every word the grammar or a shipped concept uses is a single token.
 *
 * @module
 */
import { ProceduralWorld } from "./world.ts";
import { ALL_FILLS, ALL_SHAPES } from "./shapes.ts";
import { captionWords } from "./caption.ts";
import { CONCEPTS } from "./concepts.ts";
import { learnBpe, type LearnedBpe } from "./bpe_learn.ts";

/**
 * The corpus the tokenizer is learned from: `count` captions of every shape and fill, each
 * concept set's captions, and every grammar and trigger word once (so rare words get merged).
 *
 * @example
 * ```ts
 * import { captionCorpus } from "./caption_tokenizer.ts";
 * console.log(captionCorpus(10).length > 10); // true
 * ```
 */
export function captionCorpus(count = 4000): string[] {
  const world = new ProceduralWorld({ seed: 0, shapes: ALL_SHAPES, fills: ALL_FILLS });
  const texts: string[] = [];
  for (let i = 0; i < count; i++) texts.push(world.describe(i).caption);
  for (const c of CONCEPTS) {
    const concept = new ProceduralWorld(c.world);
    for (let i = 0; i < c.count; i++) texts.push(concept.describe(i).caption);
    texts.push(c.trigger);
  }
  texts.push(...captionWords());
  return texts;
}

/**
 * Learns the caption tokenizer (deterministic: the same files on every call).
 *
 * @example
 * ```ts
 * import { ClipTokenizer } from "../nn/tokenizer.ts";
 * import { learnCaptionTokenizer } from "./caption_tokenizer.ts";
 * const { vocab, merges } = learnCaptionTokenizer();
 * const tok = new ClipTokenizer(vocab, merges);
 * console.log(tok.tokenize("two red zqstar shapes")); // ["two</w>", "red</w>", "zqstar</w>", "shapes</w>"]
 * ```
 */
export function learnCaptionTokenizer(): LearnedBpe {
  return learnBpe(captionCorpus());
}
