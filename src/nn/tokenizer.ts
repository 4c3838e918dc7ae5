/**
 * The CLIP byte-level BPE tokenizer (portable core: web APIs only), following OpenAI CLIP's
 * `simple_tokenizer.py` and Hugging Face's `CLIPTokenizer`: clean whitespace and lower-case the
 * text, split it with CLIP's pre-tokenizer regex, map each piece's UTF-8 bytes to printable
 * characters (`bytes_to_unicode`), apply the BPE merges with `</w>` marking the end of each
 * word, then add BOS / EOS and truncate or pad to 77 tokens. `loadTokenizer(folder)` in
 * `tokenizer_fs.ts` reads `vocab.json` and `merges.txt` from disk.
 *
 * Differences from the Python tokenizers: no `ftfy` text fixing or HTML unescaping; lower-casing
 * is JavaScript's `toLowerCase()`.
 *
 * @module
 */
import { TokenizerError } from "./errors.ts";

/** CLIP's pre-tokenizer: special tokens, English contractions, letter runs, single digits, and
 * runs of other non-space characters. */
const PATTERN =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

const BOS_TOKEN = "<|startoftext|>";
const EOS_TOKEN = "<|endoftext|>";
const WORD_END = "</w>";

/**
 * GPT-2 / CLIP `bytes_to_unicode`: printable bytes map to themselves, the other 68 bytes to
 * U+0100 onwards, so every byte is one visible character (e.g. space 0x20 -> "Ġ").
 */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const table: string[] = new Array(256);
  for (const b of bs) table[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCodePoint(256 + n++);
  }
  return table;
}

const BYTE_ENCODER: readonly string[] = bytesToUnicode();
const BYTE_DECODER: ReadonlyMap<string, number> = new Map(BYTE_ENCODER.map((c, b) => [c, b]));

/** Options of {@link ClipTokenizer}. */
export interface ClipTokenizerOptions {
  /** Sequence length after truncation and padding (default 77). */
  maxLength?: number;
  /** Padding token (default `<|endoftext|>`, as SD 1.x; SD 2.x uses `!`). */
  padToken?: string;
  /** Name used in error messages (e.g. the folder the files came from). */
  source?: string;
}

/** Options of {@link ClipTokenizer.encode}. */
export interface EncodeOptions {
  /** Pad to `maxLength` with the pad id (default true). */
  padding?: boolean;
  /** Override the tokenizer's `maxLength` for this call. */
  maxLength?: number;
}

/** The result of {@link ClipTokenizer.encode}. */
export interface Encoding {
  /** Token ids: BOS, the prompt's tokens, EOS, then padding. */
  ids: number[];
  /** Tokens before padding (BOS and EOS included): the attention length. */
  length: number;
}

/**
 * Parses `vocab.json` text: an object mapping token strings to integer ids.
 *
 * @example
 * ```ts
 * import { parseVocab } from "./tokenizer.ts";
 * console.log(parseVocab('{"a</w>": 320}').get("a</w>")); // 320
 * ```
 */
export function parseVocab(json: string, source = "vocab.json"): Map<string, number> {
  let root: unknown;
  try {
    root = JSON.parse(json);
  } catch (e) {
    throw new TokenizerError(
      `The vocabulary "${source}" is not valid JSON (${(e as Error).message}); ` +
        "use the tokenizer's vocab.json",
    );
  }
  if (root === null || typeof root !== "object" || Array.isArray(root)) {
    throw new TokenizerError(
      `The vocabulary "${source}" must be a JSON object of token -> id; use the tokenizer's ` +
        "vocab.json",
    );
  }
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(root)) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
      throw new TokenizerError(
        `The vocabulary "${source}" maps "${token}" to ${JSON.stringify(id)}, not an id >= 0; ` +
          "use the tokenizer's vocab.json",
      );
    }
    vocab.set(token, id);
  }
  return vocab;
}

/**
 * Parses `merges.txt` text: an optional `#version` line, then one merge (`a b`) per line in
 * priority order.
 *
 * @example
 * ```ts
 * import { parseMerges } from "./tokenizer.ts";
 * console.log(parseMerges("#version: 0.2\nc a\nca t</w>\n")); // [["c", "a"], ["ca", "t</w>"]]
 * ```
 */
export function parseMerges(text: string, source = "merges.txt"): [string, string][] {
  const merges: [string, string][] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === "" || (i === 0 && line.startsWith("#version"))) continue;
    const parts = line.split(" ");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
      throw new TokenizerError(
        `Line ${i + 1} of "${source}" is ${JSON.stringify(line.slice(0, 40))}, not two ` +
          "symbols separated by one space; use the tokenizer's merges.txt",
      );
    }
    merges.push([parts[0]!, parts[1]!]);
  }
  return merges;
}

/**
 * The CLIP tokenizer of SD 1.x / 2.x text encoders.
 *
 * @example
 * ```ts
 * import { ClipTokenizer } from "./tokenizer.ts";
 * const vocab = { "a</w>": 320, "c": 66, "a": 64, "t</w>": 339, "ca": 497, "cat</w>": 2368,
 *   "<|startoftext|>": 49406, "<|endoftext|>": 49407 };
 * const tok = new ClipTokenizer(vocab, [["c", "a"], ["ca", "t</w>"]]);
 * const { ids, length } = tok.encode("A cat");
 * console.log(ids.slice(0, length)); // [49406, 320, 2368, 49407]
 * ```
 */
export class ClipTokenizer {
  /** Id of `<|startoftext|>`. */
  readonly bosId: number;
  /** Id of `<|endoftext|>` (also the id of unknown pieces). */
  readonly eosId: number;
  /** Id used for padding. */
  readonly padId: number;
  /** Sequence length after truncation and padding. */
  readonly maxLength: number;
  #vocab: ReadonlyMap<string, number>;
  #decoder: Map<number, string>;
  #ranks = new Map<string, number>();
  #cache = new Map<string, string[]>();

  /**
   * Builds a tokenizer from a vocabulary (token -> id) and merges in priority order; see
   * {@link parseVocab} and {@link parseMerges} for the file formats.
   */
  constructor(
    vocab: ReadonlyMap<string, number> | Readonly<Record<string, number>>,
    merges: readonly (readonly [string, string])[],
    options: ClipTokenizerOptions = {},
  ) {
    const source = options.source ?? "the vocabulary";
    this.#vocab = vocab instanceof Map
      ? vocab
      : new Map(Object.entries(vocab as Record<string, number>));
    const special = (token: string, role: string): number => {
      const id = this.#vocab.get(token);
      if (id === undefined) {
        throw new TokenizerError(
          `The vocabulary of ${source} has no ${token} entry (the ${role} token); use a CLIP ` +
            "tokenizer's vocab.json",
        );
      }
      return id;
    };
    this.bosId = special(BOS_TOKEN, "start");
    this.eosId = special(EOS_TOKEN, "end");
    this.padId = special(options.padToken ?? EOS_TOKEN, "padding");
    const maxLength = options.maxLength ?? 77;
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new TokenizerError(
        `The maxLength option is ${maxLength}, but it must be a whole number >= 2 to hold ` +
          "BOS and EOS",
      );
    }
    this.maxLength = maxLength;
    this.#decoder = new Map([...this.#vocab].map(([t, id]) => [id, t]));
    merges.forEach(([a, b], i) => {
      const key = `${a} ${b}`;
      if (!this.#ranks.has(key)) this.#ranks.set(key, i);
    });
  }

  /**
   * Builds a tokenizer from the text of `vocab.json` and `merges.txt`.
   *
   * @example
   * ```ts
   * import { ClipTokenizer } from "./tokenizer.ts";
   * const tok = ClipTokenizer.fromText(
   *   '{"<|startoftext|>": 0, "<|endoftext|>": 1, "h": 2, "i</w>": 3, "hi</w>": 4}',
   *   "#version: 0.2\nh i</w>\n",
   * );
   * console.log(tok.encode("hi", { padding: false }).ids); // [0, 4, 1]
   * ```
   */
  static fromText(
    vocabJson: string,
    mergesText: string,
    options: ClipTokenizerOptions = {},
  ): ClipTokenizer {
    const vocab = parseVocab(
      vocabJson,
      options.source ? `${options.source}/vocab.json` : undefined,
    );
    const merges = parseMerges(
      mergesText,
      options.source ? `${options.source}/merges.txt` : undefined,
    );
    return new ClipTokenizer(vocab, merges, options);
  }

  /** Number of vocabulary entries. */
  get vocabSize(): number {
    return this.#vocab.size;
  }

  /** The BPE pieces of a text, without BOS / EOS (e.g. `["a</w>", "photo</w>"]`). */
  tokenize(text: string): string[] {
    const clean = text.replace(/\s+/gu, " ").trim().toLowerCase();
    const out: string[] = [];
    for (const m of clean.matchAll(PATTERN)) {
      const word = m[0];
      if (word === BOS_TOKEN || word === EOS_TOKEN) {
        out.push(word);
        continue;
      }
      let mapped = "";
      for (const b of new TextEncoder().encode(word)) mapped += BYTE_ENCODER[b]!;
      for (const piece of this.#bpe(mapped)) out.push(piece); // no spread: words can be huge
    }
    return out;
  }

  /** Token ids of a text without BOS / EOS, truncation or padding. Unknown pieces map to EOS. */
  encodeIds(text: string): number[] {
    return this.tokenize(text).map((p) => this.#vocab.get(p) ?? this.eosId);
  }

  /**
   * BOS + tokens + EOS, truncated to `maxLength` (EOS kept last) and padded with the pad id.
   *
   * @example
   * ```ts
   * import { ClipTokenizer } from "./tokenizer.ts";
   * const tok = new ClipTokenizer({ "<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2 }, []);
   * console.log(tok.encode("a a", { maxLength: 6 })); // { ids: [0, 2, 2, 1, 1, 1], length: 4 }
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    const max = options.maxLength ?? this.maxLength;
    if (!Number.isInteger(max) || max < 2) {
      throw new TokenizerError(
        `The maxLength option is ${max}, but it must be a whole number >= 2 to hold BOS and EOS`,
      );
    }
    const body = this.encodeIds(text).slice(0, max - 2);
    const ids = [this.bosId, ...body, this.eosId];
    const length = ids.length;
    if (options.padding ?? true) { while (ids.length < max) ids.push(this.padId); }
    return { ids, length };
  }

  /** {@link encode} for several texts. */
  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): Encoding[] {
    return texts.map((t) => this.encode(t, options));
  }

  /**
   * Text of token ids: pieces joined, `</w>` as a space, bytes decoded; BOS and EOS dropped
   * (pass `ids.slice(0, length)` when the pad token is not EOS).
   */
  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      if (id === this.bosId || id === this.eosId) continue;
      const piece = this.#decoder.get(id);
      if (piece === undefined) continue;
      for (const ch of piece.replaceAll(WORD_END, " ")) {
        bytes.push(ch === " " ? 0x20 : BYTE_DECODER.get(ch) ?? 0x3f);
      }
    }
    return new TextDecoder().decode(new Uint8Array(bytes)).trim();
  }

  /** BPE of one pre-token (already byte-mapped): merge the best-ranked pair until none apply. */
  #bpe(token: string): string[] {
    const hit = this.#cache.get(token);
    if (hit) return hit;
    let word = [...token];
    word[word.length - 1] += WORD_END;
    while (word.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.#ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!, second = word[best + 1]!;
      const next: string[] = [];
      for (let i = 0; i < word.length;) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]!);
          i += 1;
        }
      }
      word = next;
    }
    if (this.#cache.size > 10000) this.#cache.clear();
    this.#cache.set(token, word);
    return word;
  }
}
