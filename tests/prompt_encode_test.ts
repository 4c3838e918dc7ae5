// Weighted, chunked prompt encoding on a small random CLIP with 77 positions and a toy vocabulary:
// a plain short prompt encodes exactly as before, weights scale tokens and keep the mean, long
// prompts become concatenated 77-token chunks, and a pair is padded to one shape.
import { deepEqual, equal, ok } from "node:assert/strict";
import { CLIPTextModel, Generator } from "../mod.ts";
import { ClipTokenizer } from "../src/nn/tokenizer.ts";
import {
  encodePromptPair,
  encodePromptsSharingNegative,
  tokenizePrompt,
} from "../src/nn/prompt_encode.ts";
import "./_helpers.ts"; // acquires the device

const tok = new ClipTokenizer({
  "<|startoftext|>": 0,
  "<|endoftext|>": 1,
  "a</w>": 2,
  "cat</w>": 3,
  "dog</w>": 4,
  ",</w>": 5,
  "c": 6,
  "ca": 7,
  "d": 8,
  "do": 9,
}, [["c", "a"], ["ca", "t</w>"], ["d", "o"], ["do", "g</w>"]]);
const te = new CLIPTextModel({
  vocabSize: 10,
  hiddenSize: 16,
  intermediateSize: 32,
  heads: 2,
  layers: 2,
  maxPositions: 77,
}, { generator: new Generator(2) });
const enc = (ids: readonly number[], shape: readonly [number, number]) => te.forward(ids, shape);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

Deno.test("a plain prompt encodes as one 77-token sequence, like the plain tokenizer", async () => {
  deepEqual(tokenizePrompt(tok, "a cat, dog").chunks[0]!.ids.slice(0, 6), [0, 2, 3, 5, 4, 1]);
  const { cond, uncond, warnings } = await encodePromptPair(enc, tok, "a cat", "dog");
  deepEqual(cond.shape, [1, 77, 16]);
  deepEqual(uncond.shape, [1, 77, 16]);
  equal(warnings.length, 0);
  using ref = te.forward(tok.encode("a cat").ids, [1, 77]);
  equal(maxDiff(await cond.toArray(), await ref.toArray()), 0);
  cond.dispose();
  uncond.dispose();
});

Deno.test("weights scale their tokens' states, then the chunk is rescaled to its mean", async () => {
  const { cond, uncond } = await encodePromptPair(enc, tok, "a (cat:1.5)", "");
  using ref = te.forward(tok.encode("a cat").ids, [1, 77]);
  const z = await ref.toArray(), got = await cond.toArray();
  // by hand: token 2 (cat) x 1.5, all x mean(z) / mean(z w)
  const w = (i: number) => (Math.floor(i / 16) === 2 ? 1.5 : 1);
  let s0 = 0, s1 = 0;
  for (let i = 0; i < z.length; i++) {
    s0 += z[i]!;
    s1 += z[i]! * w(i);
  }
  const want = Array.from(z, (v, i) => v * w(i) * s0 / s1);
  // float32 readback of float32 products: 1e-5 absolute on O(1) LayerNorm outputs
  ok(maxDiff(got, want) < 1e-5, `${maxDiff(got, want)}`);
  cond.dispose();
  uncond.dispose();
});

Deno.test("long prompts become 77-token chunks; the shorter of a pair is padded", async () => {
  const long = Array(80).fill("cat").join(" ");
  equal(tokenizePrompt(tok, long).chunks.length, 2);
  const { cond, uncond } = await encodePromptPair(enc, tok, long, "dog BREAK a");
  deepEqual(cond.shape, [1, 154, 16]);
  deepEqual(uncond.shape, [1, 154, 16]);
  // chunk 2 of the prompt is the encoding of its last 5 words alone
  using tail = te.forward(tok.encode(Array(5).fill("cat").join(" ")).ids, [1, 77]);
  const c = await cond.toArray();
  equal(maxDiff(c.slice(77 * 16), await tail.toArray()), 0);
  // BREAK put "a" in the negative's second chunk
  using a = te.forward(tok.encode("a").ids, [1, 77]);
  equal(maxDiff((await uncond.toArray()).slice(77 * 16), await a.toArray()), 0);
  const pair = await encodePromptPair(enc, tok, long, "");
  // the empty negative is padded with the empty prompt's encoding: both chunks equal
  const u = await pair.uncond.toArray();
  equal(maxDiff(u.slice(0, 77 * 16), u.slice(77 * 16)), 0);
  for (const t of [cond, uncond, pair.cond, pair.uncond]) t.dispose();
});

Deno.test("unbalanced brackets are read leniently and reported", async () => {
  const { cond, uncond, warnings } = await encodePromptPair(enc, tok, "a (cat", "dog)");
  equal(warnings.length, 2);
  ok(warnings[0]!.startsWith("Prompt: ") && warnings[1]!.startsWith("Negative prompt: "));
  cond.dispose();
  uncond.dispose();
});

Deno.test("prompts sharing a negative encode it once per chunk count, as pairs would", async () => {
  const long = Array(80).fill("cat").join(" ");
  const calls: number[] = [];
  const counting = (ids: readonly number[], shape: readonly [number, number]) => {
    calls.push(ids.length);
    return enc(ids, shape);
  };
  const prompts = ["a cat", long, "a dog", "dog"];
  const pairs = await encodePromptsSharingNegative(counting, tok, prompts, "cat");
  // 5 prompt chunks, and the negative once at 1 chunk and once at 2 (padded)
  equal(calls.length, 5 + 1 + 2);
  ok(pairs[0]!.uncond === pairs[2]!.uncond && pairs[2]!.uncond === pairs[3]!.uncond);
  ok(pairs[1]!.uncond !== pairs[0]!.uncond);
  for (const [i, prompt] of prompts.entries()) {
    const one = await encodePromptPair(enc, tok, prompt, "cat");
    deepEqual(pairs[i]!.uncond.shape, one.uncond.shape);
    equal(maxDiff(await pairs[i]!.cond.toArray(), await one.cond.toArray()), 0);
    equal(maxDiff(await pairs[i]!.uncond.toArray(), await one.uncond.toArray()), 0);
    one.cond.dispose();
    one.uncond.dispose();
  }
  for (const t of new Set(pairs.flatMap((p) => [p.cond, p.uncond]))) t.dispose();
});
