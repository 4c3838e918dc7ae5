// Shared by the pretraining tests: the caption tokenizer, a procedural stream and tiny-size
// pretrain options.
import { learnCaptionTokenizer } from "../src/eval/caption_tokenizer.ts";
import { mergesText, vocabJson } from "../src/eval/bpe_learn.ts";
import { ProceduralWorld } from "../src/eval/world.ts";
import { ClipTokenizer } from "../src/nn/tokenizer.ts";
import type { PretrainOptions } from "../src/train/pretrain_fs.ts";

const bpe = learnCaptionTokenizer();
/** The caption tokenizer's CLIP files. */
export const TOKENIZER_FILES: { "vocab.json": string; "merges.txt": string } = {
  "vocab.json": vocabJson(bpe),
  "merges.txt": mergesText(bpe),
};
/** The caption tokenizer. */
export const tokenizer: ClipTokenizer = ClipTokenizer.fromText(
  TOKENIZER_FILES["vocab.json"],
  TOKENIZER_FILES["merges.txt"],
);

const world = new ProceduralWorld({ seed: 6 });
/** Items `start .. start + count` of the procedural stream (world seed 6). */
export function source(start: number, count: number): { rgb: Uint8Array[]; captions: string[] } {
  const items = world.items(start, count);
  return { rgb: items.map((i) => i.rgb), captions: items.map((i) => i.caption) };
}

/** Options of a tiny pretraining run into `out` (2 + 2 steps at batch 2, seed 3). */
export function tinyPretrainOptions(
  out: string,
  extra: Partial<PretrainOptions> = {},
): PretrainOptions {
  return {
    stage: "all",
    steps: 2,
    vaeSteps: 2,
    batchSize: 2,
    out,
    seed: 3,
    size: "tiny",
    logEvery: 1,
    tokenizer,
    tokenizerFiles: TOKENIZER_FILES,
    command: "test",
    print: () => {},
    ...extra,
  };
}
