// A1111 prompt syntax and chunking, checked by hand. The parse cases are the doctests of
// AUTOMATIC1111's modules/prompt_parser.py (parse_prompt_attention); weights compare to 1e-12
// (the products of at most 4 factors in float64, as Python computes them).
import { deepEqual, equal, ok } from "node:assert/strict";
import { parsePromptAttention, promptChunks, type WeightedText } from "../src/nn/prompt_weights.ts";

function same(got: WeightedText[], want: WeightedText[]): void {
  equal(got.length, want.length, JSON.stringify(got));
  got.forEach(([t, w], i) => {
    equal(t, want[i]![0]);
    ok(Math.abs(w - want[i]![1]) < 1e-12, `${t}: ${w} vs ${want[i]![1]}`);
  });
}

Deno.test("emphasis parses as A1111's doctests say", () => {
  same(parsePromptAttention("normal text").parts, [["normal text", 1]]);
  same(parsePromptAttention("an (important) word").parts, [
    ["an ", 1],
    ["important", 1.1],
    [" word", 1],
  ]);
  same(parsePromptAttention("(unbalanced").parts, [["unbalanced", 1.1]]);
  same(parsePromptAttention("\\(literal\\]").parts, [["(literal]", 1]]);
  same(parsePromptAttention("(unnecessary)(parens)").parts, [["unnecessaryparens", 1.1]]);
  same(parsePromptAttention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).").parts, [
    ["a ", 1],
    ["house", 1.5730000000000004],
    [" ", 1.1],
    ["on", 1],
    [" a ", 1.1],
    ["hill", 0.55],
    [", sun, ", 1.1],
    ["sky", 1.4641000000000006],
    [".", 1.1],
  ]);
  // by hand: [x] is x / 1.1, nesting multiplies, ":" without a closing ")" is text
  same(parsePromptAttention("[[a]] b:c").parts, [["a", 1 / 1.21], [" b:c", 1]]);
  same(parsePromptAttention("").parts, [["", 1]]);
});

Deno.test("BREAK splits into its own marker; unbalanced brackets warn", () => {
  same(parsePromptAttention("a cat BREAK a dog").parts, [["a cat", 1], ["BREAK", -1], [
    "a dog",
    1,
  ]]);
  // "BREAKFAST" is a word, not a BREAK
  same(parsePromptAttention("BREAKFAST").parts, [["BREAKFAST", 1]]);
  const open = parsePromptAttention("a (cat");
  equal(open.warnings.length, 1);
  ok(open.warnings[0]!.includes("unclosed"), open.warnings[0]);
  const stray = parsePromptAttention("a cat) dog");
  same(stray.parts, [["a cat) dog", 1]]);
  ok(stray.warnings[0]!.includes('")" at character 6'), stray.warnings[0]);
  equal(parsePromptAttention("(a:1.2) [b]").warnings.length, 0);
});

// a toy tokenizer: each word is one token whose id is its length + 10, "," is id 3
const toy = (t: string) =>
  t.replace(/,/g, " , ").split(/\s+/).filter((w) => w).map((w) => (w === "," ? 3 : w.length + 10));
const IDS = { bos: 1, eos: 2, comma: 3 };

Deno.test("chunks: 75 tokens each, framed and padded, weights carried, BREAK and commas", () => {
  // 80 one-letter words: chunk 1 holds 75, chunk 2 the other 5 and 70 pads
  const c = promptChunks(parsePromptAttention(Array(80).fill("a").join(" ")).parts, toy, IDS);
  equal(c.length, 2);
  for (const ch of c) {
    equal(ch.ids.length, 77);
    equal(ch.ids[0], 1);
    equal(ch.ids[76], 2);
  }
  equal(c[0]!.ids.filter((i) => i === 11).length, 75);
  equal(c[1]!.ids.filter((i) => i === 11).length, 5);
  deepEqual(c[1]!.ids.slice(6, 76), Array(70).fill(2));
  // weights follow their tokens; BOS, EOS and padding weigh 1
  const w = promptChunks(parsePromptAttention("a (bb:1.5) [ccc]").parts, toy, IDS)[0]!;
  deepEqual(w.ids.slice(0, 5), [1, 11, 12, 13, 2]);
  deepEqual(w.weights.slice(0, 5).map((v) => +v.toFixed(6)), [1, 1, 1.5, 0.909091, 1]);
  // BREAK ends a chunk early
  const b = promptChunks(parsePromptAttention("a a BREAK bb").parts, toy, IDS);
  equal(b.length, 2);
  deepEqual(b[0]!.ids.slice(0, 4), [1, 11, 11, 2]);
  deepEqual(b[1]!.ids.slice(0, 3), [1, 12, 2]);
  // a comma within the last 20 tokens moves the words after it to the next chunk: 70 words, a
  // comma (token 71), then 10 words; chunk 1 ends after the comma (71 tokens + 4 pads)
  const text = Array(70).fill("a").join(" ") + ", " + Array(10).fill("bb").join(" ");
  const k = promptChunks(parsePromptAttention(text).parts, toy, IDS);
  equal(k.length, 2);
  equal(k[0]!.ids[71], 3);
  deepEqual(k[0]!.ids.slice(72, 77), [2, 2, 2, 2, 2]);
  equal(k[1]!.ids.filter((i) => i === 12).length, 10);
  // without the comma id there is no backtracking: the break falls at 75
  const n = promptChunks(parsePromptAttention(text).parts, toy, { bos: 1, eos: 2 });
  equal(n[0]!.ids.filter((i) => i === 12).length, 4);
  // the empty prompt is one chunk of padding
  deepEqual(promptChunks(parsePromptAttention("").parts, toy, IDS)[0]!.ids, [
    1,
    ...Array(76).fill(2),
  ]);
});
