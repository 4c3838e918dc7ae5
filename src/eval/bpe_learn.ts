/**
 * Learns a CLIP-style byte-level BPE tokenizer from a text corpus, written as CLIP's
 * `vocab.json` + `merges.txt` so `ClipTokenizer` (src/nn/tokenizer.ts) loads it unchanged.
 * Words are split exactly as that tokenizer splits them (lower case, its pre-tokenizer, UTF-8
 * bytes mapped to characters, `</w>` on each word's last symbol), then the most frequent
 * adjacent pair is merged until no pair occurs `minFrequency` times or `maxMerges` are made
 * (Sennrich et al. 2016). Ids follow CLIP's order: the alphabet's symbols, the same with `</w>`,
 * the merge results in merge order, then `<|startoftext|>` and `<|endoftext|>` last.
 *
 * @module
 */
import { bytesToUnicode, ClipTokenizer } from "../nn/tokenizer.ts";
import { WorldError } from "./errors.ts";

const BOS = "<|startoftext|>";
const EOS = "<|endoftext|>";
const WORD_END = "</w>";

/** Options of {@link learnBpe}. */
export interface LearnBpeOptions {
  /** Most merges to make (default: no limit). */
  maxMerges?: number;
  /** Fewest occurrences of a pair for it to be merged (default 1: merge until every word is one
   * symbol). */
  minFrequency?: number;
  /** Bytes in the base alphabet besides those the corpus uses (default: printable ASCII without
   * upper case, which the tokenizer lower-cases away), so any such text still tokenizes. */
  alphabet?: Iterable<number>;
}

/** A learned tokenizer: CLIP's two files' contents. */
export interface LearnedBpe {
  /** Token -> id, as in `vocab.json`. */
  vocab: Map<string, number>;
  /** Merges in priority order, as in `merges.txt`. */
  merges: [string, string][];
}

/** Printable ASCII (0x21-0x7e) without upper-case letters. */
function defaultAlphabet(): number[] {
  const out: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) if (b < 0x41 || b > 0x5a) out.push(b);
  return out;
}

/**
 * Learns merges and a vocabulary from `texts`.
 *
 * @example
 * ```ts
 * import { learnBpe } from "./bpe_learn.ts";
 * const { vocab, merges } = learnBpe(["a red circle", "two red circles"]);
 * console.log(merges.length > 0, vocab.has("red</w>")); // true true
 * ```
 */
export function learnBpe(texts: Iterable<string>, options: LearnBpeOptions = {}): LearnedBpe {
  const maxMerges = options.maxMerges ?? Infinity;
  const minFrequency = options.minFrequency ?? 1;
  if (!(maxMerges >= 0) || !Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new WorldError(
      `The BPE options maxMerges ${maxMerges} and minFrequency ${minFrequency} are out of range; ` +
        "use maxMerges >= 0 and a whole minFrequency >= 1",
    );
  }
  const byteChars = bytesToUnicode();
  // A tokenizer with every byte symbol and no merges splits text into single symbols, `</w>`
  // on the last of each word: exactly the units the merges will join.
  const base: Record<string, number> = { [BOS]: 0, [EOS]: 1 };
  byteChars.forEach((c, i) => {
    base[c] = 2 + i;
    base[c + WORD_END] = 258 + i;
  });
  const splitter = new ClipTokenizer(base, []);
  const words = new Map<string, { symbols: string[]; count: number }>();
  const used = new Set<number>(options.alphabet ?? defaultAlphabet());
  for (const text of texts) {
    let word: string[] = [];
    for (const symbol of splitter.tokenize(text)) {
      if (symbol === BOS || symbol === EOS) continue;
      word.push(symbol);
      if (!symbol.endsWith(WORD_END)) continue;
      const key = word.join(" ");
      const entry = words.get(key);
      if (entry) entry.count++;
      else words.set(key, { symbols: word, count: 1 });
      word = [];
    }
  }
  const charByte = new Map(byteChars.map((c, b) => [c, b]));
  for (const { symbols } of words.values()) {
    for (const s of symbols) used.add(charByte.get(s.replace(WORD_END, ""))!);
  }
  const merges: [string, string][] = [];
  while (merges.length < maxMerges) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words.values()) {
      for (let i = 0; i < symbols.length - 1; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    // Most frequent pair; ties go to the smaller pair string, so the result is deterministic.
    let best = "", bestCount = 0;
    for (const [key, count] of pairs) {
      if (count > bestCount || (count === bestCount && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (bestCount < minFrequency) break;
    const [a, b] = best.split(" ") as [string, string];
    merges.push([a, b]);
    for (const entry of words.values()) {
      const s = entry.symbols, next: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i < s.length - 1 && s[i] === a && s[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(s[i]!);
      }
      entry.symbols = next;
    }
  }
  const vocab = new Map<string, number>();
  const alphabet = byteChars.filter((_, b) => used.has(b));
  for (const c of alphabet) vocab.set(c, vocab.size);
  for (const c of alphabet) vocab.set(c + WORD_END, vocab.size);
  for (const [a, b] of merges) if (!vocab.has(a + b)) vocab.set(a + b, vocab.size);
  vocab.set(BOS, vocab.size);
  vocab.set(EOS, vocab.size);
  return { vocab, merges };
}

/**
 * `vocab.json` text of a learned tokenizer (entries in id order).
 *
 * @example
 * ```ts
 * import { learnBpe, vocabJson } from "./bpe_learn.ts";
 * console.log(JSON.parse(vocabJson(learnBpe(["hi"])))["hi</w>"] >= 0); // true
 * ```
 */
export function vocabJson(bpe: LearnedBpe): string {
  return JSON.stringify(Object.fromEntries(bpe.vocab)) + "\n";
}

/**
 * `merges.txt` text of a learned tokenizer: CLIP's `#version: 0.2` line, then one merge a line.
 *
 * @example
 * ```ts
 * import { learnBpe, mergesText } from "./bpe_learn.ts";
 * console.log(mergesText(learnBpe(["hi"]))); // "#version: 0.2\nh i</w>\n"
 * ```
 */
export function mergesText(bpe: LearnedBpe): string {
  return ["#version: 0.2", ...bpe.merges.map(([a, b]) => `${a} ${b}`)].join("\n") + "\n";
}
