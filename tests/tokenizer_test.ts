// The CLIP BPE tokenizer on a toy vocabulary small enough to derive every id by hand.
//
// The toy files follow CLIP's rules: single byte characters (after bytes_to_unicode), the same
// with the word-end marker `</w>`, one entry per merge result, and the special tokens at CLIP's
// ids. Merges in priority order (rank = line number after the #version line, from 0):
//   0 "c a"  1 "ca t</w>"  2 "o t"  3 "p h"  4 "ph ot"  5 "phot o</w>"  6 "o f</w>"  7 "i t</w>"
//   8 "' s</w>"  9 "h e"  10 "l l"  11 "he ll"  12 "hell o</w>"  13 "Ã ©</w>"  14 "Ã ¯"
// Non-ASCII text goes through UTF-8 bytes: é = C3 A9 -> "Ã©", ï = C3 AF -> "Ã¯",
// 😀 = F0 9F 98 80 -> "ð" "Ł" "ĺ" "Ģ" (0x9F, 0x98, 0x80 are not printable, so they map to
// U+0100 + their index among the unprintable bytes: 65 -> Ł, 58 -> ĺ, 34 -> Ģ).
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { bytesToUnicode, ClipTokenizer, parseMerges, TokenizerError } from "../src/nn/mod.ts";
import { loadTokenizer } from "../src/nn/mod_fs.ts";

const VOCAB: Record<string, number> = {
  // single byte characters
  "a": 1,
  "c": 2,
  "d": 3,
  "e": 4,
  "f": 5,
  "h": 6,
  "i": 7,
  "l": 8,
  "n": 9,
  "o": 10,
  "p": 11,
  "r": 12,
  "s": 13,
  "t": 14,
  "v": 15,
  "w": 16,
  "'": 17,
  "!": 18,
  "Ã": 19,
  "ð": 20,
  "Ł": 21,
  "ĺ": 22,
  // word-final characters
  "a</w>": 101,
  "d</w>": 102,
  "e</w>": 103,
  "k</w>": 104,
  "n</w>": 105,
  "o</w>": 106,
  "s</w>": 107,
  "t</w>": 108,
  "f</w>": 109,
  ",</w>": 110,
  "!</w>": 111,
  "?</w>": 112,
  "(</w>": 113,
  ")</w>": 114,
  "0</w>": 115,
  "1</w>": 116,
  "2</w>": 117,
  "4</w>": 118,
  "©</w>": 119,
  "Ģ</w>": 120,
  // merge results, in merge order
  "ca": 201,
  "cat</w>": 202,
  "ot": 203,
  "ph": 204,
  "phot": 205,
  "photo</w>": 206,
  "of</w>": 207,
  "it</w>": 208,
  "'s</w>": 209,
  "he": 210,
  "ll": 211,
  "hell": 212,
  "hello</w>": 213,
  "Ã©</w>": 214,
  "Ã¯": 215,
  // specials at CLIP's ids
  "<|startoftext|>": 49406,
  "<|endoftext|>": 49407,
};
const MERGES = `#version: 0.2
c a
ca t</w>
o t
p h
ph ot
phot o</w>
o f</w>
i t</w>
' s</w>
h e
l l
he ll
hell o</w>
Ã ©</w>
Ã ¯
`;
const BOS = 49406, EOS = 49407;

/** Ids of BPE pieces, failing loudly on a piece missing from the toy vocabulary. */
function ids(...pieces: string[]): number[] {
  return pieces.map((p) => {
    const id = VOCAB[p];
    if (id === undefined) throw new Error(`test bug: "${p}" is not in the toy vocabulary`);
    return id;
  });
}

async function withTokenizerDir<T>(
  fn: (dir: string) => Promise<T>,
  files: Record<string, string> = { "vocab.json": JSON.stringify(VOCAB), "merges.txt": MERGES },
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "denoise_tok_" });
  try {
    for (const [name, text] of Object.entries(files)) {
      const slash = name.lastIndexOf("/");
      if (slash > 0) await Deno.mkdir(`${dir}/${name.slice(0, slash)}`, { recursive: true });
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const tok = await withTokenizerDir((dir) => loadTokenizer(dir));

function body(text: string): number[] {
  return tok.encode(text, { padding: false }).ids;
}

Deno.test("bytesToUnicode() maps every byte to a distinct visible character", () => {
  const t = bytesToUnicode();
  equal(t.length, 256);
  equal(new Set(t).size, 256);
  equal(t[0x21], "!");
  equal(t[0x61], "a");
  equal(t[0xe9], "é");
  equal(t[0x20], "Ġ"); // space: the 33rd unprintable byte -> U+0100 + 32
  equal(t[0x00], "Ā");
  equal(t[0xad], "Ń"); // soft hyphen: the last unprintable byte -> U+0100 + 67
});

Deno.test("ClipTokenizer reads BOS and EOS from the vocabulary and pads with EOS", () => {
  equal(tok.bosId, BOS);
  equal(tok.eosId, EOS);
  equal(tok.padId, EOS);
  equal(tok.maxLength, 77);
  equal(tok.vocabSize, Object.keys(VOCAB).length);
  const { ids: all, length } = tok.encode("a cat");
  equal(length, 4);
  equal(all.length, 77);
  deepEqual(all.slice(0, 4), [BOS, 101, 202, EOS]);
  deepEqual(all.slice(4), new Array(73).fill(EOS));
});

Deno.test("ClipTokenizer applies merges by rank, not left to right, with </w> on word ends", () => {
  // photo: p h o t o</w> -> "o t" (rank 2) before "p h" (3) -> ph ot o</w> -> phot o</w>
  //   -> photo</w>
  deepEqual(tok.tokenize("photo"), ["photo</w>"]);
  // hello: "h e" (9) -> "l l" (10) -> "he ll" (11) -> "hell o</w>" (12)
  deepEqual(tok.tokenize("hello"), ["hello</w>"]);
  // a merge applies to every occurrence: c a c a t</w> -> ca ca t</w> -> ca cat</w>
  deepEqual(tok.tokenize("cacat"), ["ca", "cat</w>"]);
  // no merges apply: the word stays in characters, the last one marked
  deepEqual(tok.tokenize("world"), ["w", "o", "r", "l", "d</w>"]);
  deepEqual(tok.tokenize("steps"), ["s", "t", "e", "p", "s</w>"]);
});

Deno.test("ClipTokenizer lower-cases and splits punctuation and single digits", () => {
  deepEqual(tok.tokenize("A photo of a cat, 4K!"), [
    "a</w>",
    "photo</w>",
    "of</w>",
    "a</w>",
    "cat</w>",
    ",</w>",
    "4</w>",
    "k</w>",
    "!</w>",
  ]);
  deepEqual(body("A photo of a cat, 4K!"), [BOS, 101, 206, 207, 101, 202, 110, 118, 104, 111, EOS]);
  // digits are split one by one
  deepEqual(body("1024"), [BOS, ...ids("1</w>", "0</w>", "2</w>", "4</w>"), EOS]);
  // capitals fold to the same ids
  deepEqual(body("HELLO World"), body("hello world"));
  deepEqual(body("HELLO World"), [BOS, ...ids("hello</w>", "w", "o", "r", "l", "d</w>"), EOS]);
  // runs of punctuation are one pre-token; brackets split from the letters
  deepEqual(
    body("cat!!? (photo)"),
    [BOS, ...ids("cat</w>", "!", "!", "?</w>", "(</w>", "photo</w>", ")</w>"), EOS],
  );
});

Deno.test("ClipTokenizer collapses and trims whitespace", () => {
  deepEqual(body("  a \n\t CAT  "), [BOS, ...ids("a</w>", "cat</w>"), EOS]);
  deepEqual(body(""), [BOS, EOS]);
  deepEqual(body(" \n "), [BOS, EOS]);
});

Deno.test("ClipTokenizer splits English contractions like CLIP", () => {
  // "it's" -> "it" + "'s"; "'s" merges into one piece, "'t" has no merge
  deepEqual(body("It's"), [BOS, ...ids("it</w>", "'s</w>"), EOS]);
  deepEqual(body("a cat's"), [BOS, ...ids("a</w>", "cat</w>", "'s</w>"), EOS]);
  deepEqual(body("don't"), [BOS, ...ids("d", "o", "n</w>", "'", "t</w>"), EOS]);
});

Deno.test("ClipTokenizer encodes non-ASCII letters through their UTF-8 bytes", () => {
  // café: c a f Ã ©</w> -> "c a" (0) -> "Ã ©</w>" (13) -> ca f Ã©</w>
  deepEqual(tok.tokenize("café"), ["ca", "f", "Ã©</w>"]);
  // naïve: n a Ã ¯ v e</w> -> "Ã ¯" (14) -> n a Ã¯ v e</w>
  deepEqual(tok.tokenize("naïve"), ["n", "a", "Ã¯", "v", "e</w>"]);
  deepEqual(body("Café naïve"), [BOS, 201, 5, 214, 9, 1, 215, 15, 103, EOS]);
  // an emoji is one pre-token of four bytes, two of them unprintable
  deepEqual(body("cat 😀"), [BOS, ...ids("cat</w>", "ð", "Ł", "ĺ", "Ģ</w>"), EOS]);
});

Deno.test("ClipTokenizer maps pieces missing from the vocabulary to the unknown id (EOS)", () => {
  // z, e, b, r, a</w>: z and b are unknown
  deepEqual(body("zebra"), [BOS, EOS, 4, EOS, 12, 101, EOS]);
});

Deno.test("ClipTokenizer keeps special tokens written in the text", () => {
  deepEqual(body("a <|endoftext|>"), [BOS, 101, EOS, EOS]);
  deepEqual(body("<|startoftext|>cat"), [BOS, BOS, 202, EOS]);
});

Deno.test("ClipTokenizer truncates past 77 tokens and keeps EOS last", () => {
  const long = tok.encode("a ".repeat(100));
  equal(long.length, 77);
  equal(long.ids.length, 77);
  deepEqual(long.ids, [BOS, ...new Array(75).fill(101), EOS]);
  // exactly 75 prompt tokens fit; a 76th is cut
  deepEqual(tok.encode("a ".repeat(75)).ids, long.ids);
  deepEqual(tok.encode("a ".repeat(76)).ids, long.ids);
  equal(tok.encode("a ".repeat(74)).length, 76);
  deepEqual(tok.encode("a ".repeat(74)).ids.slice(74), [101, EOS, EOS]);
  // a long mixed prompt: 40 x "a photo" = 80 tokens -> 75 kept
  const mixed = tok.encode("a photo ".repeat(40));
  equal(mixed.ids.length, 77);
  equal(mixed.ids[76], EOS);
  deepEqual(mixed.ids.slice(1, 5), [101, 206, 101, 206]);
  equal(mixed.ids[75], 101); // the 75th prompt token is an "a"
  // a shorter maxLength for one call
  deepEqual(tok.encode("a cat photo", { maxLength: 4 }), { ids: [BOS, 101, 202, EOS], length: 4 });
});

Deno.test("ClipTokenizer encodes batches and decodes ids back to text", () => {
  const batch = tok.encodeBatch(["a cat", "photo"]);
  deepEqual(batch.map((e) => e.length), [4, 3]);
  ok(batch.every((e) => e.ids.length === 77));
  equal(tok.decode(tok.encode("A photo of a cat, 4K!").ids), "a photo of a cat , 4 k !");
  equal(tok.decode(body("café naïve")), "café naïve");
  equal(tok.decode(body("cat 😀")), "cat 😀");
});

Deno.test("loadTokenizer() reads a model folder's tokenizer/ and its pad token", () =>
  withTokenizerDir(async (dir) => {
    const sd2 = await loadTokenizer(dir);
    equal(sd2.padId, VOCAB["!"]);
    deepEqual(sd2.encode("a", { maxLength: 5 }), { ids: [BOS, 101, EOS, 18, 18], length: 3 });
    // an explicit option wins over the file
    equal((await loadTokenizer(dir, { padToken: "<|endoftext|>" })).padId, EOS);
  }, {
    "tokenizer/vocab.json": JSON.stringify(VOCAB),
    "tokenizer/merges.txt": MERGES,
    "tokenizer/special_tokens_map.json": JSON.stringify({ pad_token: { content: "!" } }),
  }));

Deno.test("tokenizer files with problems give a TokenizerError naming the file", async () => {
  const isBad = (...parts: string[]) => (e: unknown) => {
    ok(e instanceof TokenizerError, `expected TokenizerError, got ${e}`);
    ok(/^[A-Z]/.test(e.message) && !e.message.endsWith("."), e.message);
    for (const p of parts) ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  };
  const { "<|startoftext|>": _, ...noBos } = VOCAB;
  await withTokenizerDir(async (dir) => {
    await rejects(loadTokenizer(dir), isBad(dir, "<|startoftext|>"));
  }, { "vocab.json": JSON.stringify(noBos), "merges.txt": MERGES });
  await withTokenizerDir(async (dir) => {
    await rejects(loadTokenizer(dir), isBad("vocab.json", "not valid JSON"));
  }, { "vocab.json": "{oops", "merges.txt": MERGES });
  await withTokenizerDir(async (dir) => {
    await rejects(loadTokenizer(dir), isBad("merges.txt", "Line 3"));
  }, { "vocab.json": JSON.stringify(VOCAB), "merges.txt": "#version: 0.2\nc a\nc a t\n" });
  await withTokenizerDir(async (dir) => {
    await rejects(loadTokenizer(dir), isBad(`${dir}/merges.txt`));
  }, { "vocab.json": JSON.stringify(VOCAB) });
  await withTokenizerDir(async (dir) => {
    await rejects(loadTokenizer(dir), isBad('"a"', "-1"));
  }, { "vocab.json": JSON.stringify({ ...VOCAB, a: -1 }), "merges.txt": MERGES });
  throws(() => new ClipTokenizer(VOCAB, [], { padToken: "<pad>" }), isBad("<pad>"));
  throws(() => tok.encode("a", { maxLength: 1 }), isBad("maxLength"));
  deepEqual(parseMerges("c a\r\nca t</w>\r\n"), [["c", "a"], ["ca", "t</w>"]]);
});
