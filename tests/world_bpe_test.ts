// The BPE learner and the caption tokenizer it makes: merges derived by hand on a toy corpus,
// CLIP's id layout, files that the CLIP tokenizer loads unchanged, every grammar word one token,
// every caption round-tripping, and a vocabulary of a few hundred entries.
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { ClipTokenizer } from "../src/nn/tokenizer.ts";
import { loadTokenizer } from "../src/nn/tokenizer_fs.ts";
import { writeCaptionTokenizer } from "../src/eval/caption_tokenizer_fs.ts";
import {
  ALL_FILLS,
  ALL_SHAPES,
  captionWords,
  CONCEPTS,
  learnBpe,
  learnCaptionTokenizer,
  mergesText,
  ProceduralWorld,
  vocabJson,
  WorldError,
} from "../src/eval/mod.ts";

// Toy corpus: words hug x2, pug, pun, bun. Pair counts, merge by merge (ties to the smaller
// "a b" string): u g</w> 3 | h ug</w> 2 = u n</w> 2, "h" < "u" | u n</w> 2 | then all 1:
// b un</w> < p ug</w> < p un</w>.
const TOY = ["hug hug pug", "pun bun"];
const TOY_MERGES: [string, string][] = [
  ["u", "g</w>"],
  ["h", "ug</w>"],
  ["u", "n</w>"],
  ["b", "un</w>"],
  ["p", "ug</w>"],
  ["p", "un</w>"],
];

Deno.test("learnBpe() merges the most frequent pair first, ties by pair text", () => {
  const bpe = learnBpe(TOY, { alphabet: [] });
  deepEqual(bpe.merges, TOY_MERGES);
  deepEqual(learnBpe(TOY, { alphabet: [], maxMerges: 3 }).merges, TOY_MERGES.slice(0, 3));
  deepEqual(learnBpe(TOY, { alphabet: [], minFrequency: 2 }).merges, TOY_MERGES.slice(0, 3));
  // CLIP's id layout: alphabet (byte order), alphabet + </w>, merge results, BOS, EOS.
  const letters = ["b", "g", "h", "n", "p", "u"];
  deepEqual([...bpe.vocab.keys()], [
    ...letters,
    ...letters.map((c) => `${c}</w>`),
    ...TOY_MERGES.map(([a, b]) => a + b),
    "<|startoftext|>",
    "<|endoftext|>",
  ]);
  deepEqual([...bpe.vocab.values()], [...Array(bpe.vocab.size).keys()]);
  equal(mergesText(bpe).split("\n")[0], "#version: 0.2");
  throws(() => learnBpe(TOY, { minFrequency: 0 }), WorldError);
});

Deno.test("the caption tokenizer loads from vocab.json + merges.txt in the CLIP tokenizer", async () => {
  const bpe = learnCaptionTokenizer();
  deepEqual(learnCaptionTokenizer(), bpe, "learning is deterministic");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/vocab.json`, vocabJson(bpe));
    await Deno.writeTextFile(`${dir}/merges.txt`, mergesText(bpe));
    const tok = await loadTokenizer(dir);
    equal(tok.vocabSize, bpe.vocab.size);
    equal(tok.bosId, bpe.vocab.size - 2);
    equal(tok.eosId, bpe.vocab.size - 1);
    const mem = new ClipTokenizer(bpe.vocab, bpe.merges);
    const text = "A picture of two small RED zqstar shapes, blue background";
    deepEqual(tok.encode(text).ids, mem.encode(text).ids);
    deepEqual(tok.tokenize(text), [
      "a</w>",
      "picture</w>",
      "of</w>",
      "two</w>",
      "small</w>",
      "red</w>",
      "zqstar</w>",
      "shapes</w>",
      ",</w>",
      "blue</w>",
      "background</w>",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every grammar word is one token and every caption round-trips", () => {
  const bpe = learnCaptionTokenizer();
  const tok = new ClipTokenizer(bpe.vocab, bpe.merges);
  console.log(`caption tokenizer: ${bpe.vocab.size} entries, ${bpe.merges.length} merges`);
  // A few hundred: 68 printable symbols twice, one merge per new word prefix, BOS and EOS.
  ok(bpe.vocab.size <= 400, `${bpe.vocab.size} vocabulary entries`);
  for (const w of [...captionWords(), ...CONCEPTS.map((c) => c.trigger)]) {
    deepEqual(tok.tokenize(w), [`${w}</w>`], `"${w}" is not a single token`);
  }
  const worlds = [
    new ProceduralWorld({ seed: 77, shapes: ALL_SHAPES, fills: ALL_FILLS }),
    ...CONCEPTS.map((c) => new ProceduralWorld({ ...c.world, seed: 78 })),
  ];
  for (const world of worlds) {
    for (let i = 0; i < 500; i++) {
      const { caption } = world.describe(i);
      const { ids, length } = tok.encode(caption, { padding: false });
      ok(length <= 20, `"${caption}" takes ${length} tokens`);
      ok(!ids.slice(1, -1).includes(tok.eosId), `"${caption}" has an unknown piece`);
      equal(ids.length - 2, caption.split(/ |(?=,)/).length, "one token per word and comma");
      // CLIP's decode puts a space before punctuation, which was its own pre-token.
      equal(tok.decode(ids), caption.replaceAll(",", " ,"));
    }
  }
  // Text outside the grammar still tokenizes from the printable alphabet, with no unknowns;
  // CLIP's pre-tokenizer makes "x", "-", "ray", "#", "4", "2", "quokka", "!" separate words.
  const odd = tok.encode("x-ray #42 quokka!", { padding: false });
  ok(!odd.ids.slice(1, -1).includes(tok.eosId));
  equal(tok.decode(odd.ids), "x - ray # 4 2 quokka !");
});

Deno.test("writeCaptionTokenizer() writes a tokenizer folder the loader reads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeCaptionTokenizer(`${dir}/tokenizer`, 32);
    const names = [...Deno.readDirSync(`${dir}/tokenizer`)].map((e) => e.name).sort();
    deepEqual(names, [
      "merges.txt",
      "special_tokens_map.json",
      "tokenizer_config.json",
      "vocab.json",
    ]);
    const tok = await loadTokenizer(dir); // finds the tokenizer/ subfolder
    const bpe = learnCaptionTokenizer();
    const mem = new ClipTokenizer(bpe.vocab, bpe.merges);
    const text = "vxstripe style, three large cyan crosses on black";
    deepEqual(tok.encode(text).ids, mem.encode(text).ids);
    equal(tok.padId, tok.eosId);
    const config = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer/tokenizer_config.json`));
    equal(config.model_max_length, 32);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
