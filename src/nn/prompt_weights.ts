/**
 * AUTOMATIC1111's prompt syntax: emphasis `(word)` (x1.1), `(word:1.3)`, `[word]` (/1.1), escapes
 * `\(` `\)` `\[` `\]` `\\`, and `BREAK`; and its chunking of long prompts into 75-token pieces,
 * each encoded as its own 77-token CLIP sequence (BOS + 75 + EOS) and concatenated. Follows
 * `modules/prompt_parser.py` (`parse_prompt_attention`) and `modules/sd_hijack_clip.py`
 * (`tokenize_line`, with the default `comma_padding_backtrack` of 20) of
 * AUTOMATIC1111/stable-diffusion-webui.
 *
 * @module
 */

/** A run of prompt text and its attention weight; `BREAK` is `["BREAK", -1]`. */
export type WeightedText = [text: string, weight: number];

/** What `parsePromptAttention` returns. */
export interface ParsedPrompt {
  /** Text runs with their weights, neighbours of equal weight merged. */
  parts: WeightedText[];
  /**
   * Notes on brackets A1111 reads leniently (an unclosed `(` or `[` weights the rest of the
   * prompt; a stray `)` or `]` is text), for the caller to show as warnings.
   */
  warnings: string[];
}

// A1111's re_attention, token for token
const ATTENTION = /\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()[\]:]+|:/gu;
const BREAK = /\s*\bBREAK\b\s*/su;

/**
 * Parses A1111's emphasis syntax into text runs and weights, as `parse_prompt_attention` does
 * (including its leniency with unbalanced brackets, which it reports as warnings).
 *
 * @example
 * ```ts
 * import { parsePromptAttention } from "./prompt_weights.ts";
 * console.log(parsePromptAttention("an (important) word").parts);
 * // [["an ", 1], ["important", 1.1], [" word", 1]]
 * ```
 */
export function parsePromptAttention(text: string): ParsedPrompt {
  const res: WeightedText[] = [];
  const round: number[] = [], square: number[] = [];
  const warnings: string[] = [];
  const multiply = (start: number, m: number) => {
    for (let p = start; p < res.length; p++) res[p]![1] *= m;
  };
  for (const m of text.matchAll(ATTENTION)) {
    const tok = m[0], weight = m[1];
    if (tok.startsWith("\\")) res.push([tok.slice(1), 1]);
    else if (tok === "(") round.push(res.length);
    else if (tok === "[") square.push(res.length);
    else if (weight !== undefined && round.length) multiply(round.pop()!, parseFloat(weight));
    else if (tok === ")" && round.length) multiply(round.pop()!, 1.1);
    else if (tok === "]" && square.length) multiply(square.pop()!, 1 / 1.1);
    else {
      if (tok === ")" || tok === "]") {
        warnings.push(`A "${tok}" at character ${m.index! + 1} closes nothing; read as text`);
      } else if (weight !== undefined) {
        warnings.push(
          `A weight "${tok}" at character ${m.index! + 1} closes nothing; read as text`,
        );
      }
      tok.split(BREAK).forEach((part, i) => {
        if (i > 0) res.push(["BREAK", -1]);
        res.push([part, 1]);
      });
    }
  }
  for (const p of round) multiply(p, 1.1);
  for (const p of square) multiply(p, 1 / 1.1);
  if (round.length || square.length) {
    warnings.push(
      `${round.length + square.length} unclosed bracket(s) weight the prompt to its end, as ` +
        "AUTOMATIC1111 reads them; close them or escape them as \\( and \\[",
    );
  }
  if (res.length === 0) res.push(["", 1]);
  for (let i = 0; i + 1 < res.length;) {
    if (res[i]![1] === res[i + 1]![1]) {
      res[i]![0] += res[i + 1]![0];
      res.splice(i + 1, 1);
    } else i++;
  }
  return { parts: res, warnings };
}

/** One 77-token CLIP sequence of a prompt and the weight of each token. */
export interface PromptChunk {
  /** BOS, 75 tokens (padded with EOS), EOS. */
  ids: number[];
  /** The weight of each id (1 for BOS, EOS and padding). */
  weights: number[];
}

/** Token ids and options of `promptChunks`. */
export interface ChunkOptions {
  /** Begin-of-text id. */
  bos: number;
  /** End-of-text id. */
  eos: number;
  /** Padding id (default `eos`, as A1111 pads SD 1.x). */
  pad?: number;
  /** The id of `,` (enables A1111's comma backtracking); undefined disables it. */
  comma?: number;
  /** Tokens per chunk between BOS and EOS (default 75). */
  chunkLength?: number;
  /** How far back a comma may move the chunk break (default 20, A1111's). */
  commaBacktrack?: number;
}

/**
 * Splits a parsed prompt into A1111's chunks: tokens fill chunks of 75; when a chunk is full and
 * a comma lies within its last 20 tokens, the text after that comma moves to the next chunk;
 * `BREAK` ends a chunk early; every chunk is padded to 75 and framed by BOS and EOS. An empty
 * prompt is one chunk of padding.
 *
 * @example
 * ```ts
 * import { parsePromptAttention, promptChunks } from "./prompt_weights.ts";
 * const ids = (t: string) => t.split(" ").filter((w) => w).map((w) => w.length);
 * const c = promptChunks(parsePromptAttention("a (bb:1.5)").parts, ids, { bos: 0, eos: 9 });
 * console.log(c.length, c[0]!.ids.slice(0, 4), c[0]!.weights.slice(0, 4)); // 1 [0, 1, 2, 9] [1, 1, 1.5, 1]
 * ```
 */
export function promptChunks(
  parts: readonly WeightedText[],
  tokenize: (text: string) => number[],
  options: ChunkOptions,
): PromptChunk[] {
  const L = options.chunkLength ?? 75, back = options.commaBacktrack ?? 20;
  const pad = options.pad ?? options.eos;
  const chunks: PromptChunk[] = [];
  let ids: number[] = [], ws: number[] = [], lastComma = -1;
  const next = () => {
    while (ids.length < L) {
      ids.push(pad);
      ws.push(1);
    }
    chunks.push({ ids: [options.bos, ...ids, options.eos], weights: [1, ...ws, 1] });
    ids = [];
    ws = [];
    lastComma = -1;
  };
  for (const [text, weight] of parts) {
    if (text === "BREAK" && weight === -1) {
      next();
      continue;
    }
    for (const tok of tokenize(text)) {
      if (options.comma !== undefined && tok === options.comma) lastComma = ids.length;
      else if (back > 0 && ids.length === L && lastComma !== -1 && ids.length - lastComma <= back) {
        const at = lastComma + 1;
        const movedIds = ids.slice(at), movedWs = ws.slice(at);
        ids = ids.slice(0, at);
        ws = ws.slice(0, at);
        next();
        ids = movedIds;
        ws = movedWs;
      }
      if (ids.length === L) next();
      ids.push(tok);
      ws.push(weight);
    }
  }
  if (ids.length || chunks.length === 0) next();
  return chunks;
}
