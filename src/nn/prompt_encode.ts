/**
 * Encodes prompts the way AUTOMATIC1111 does: emphasis weights and 75-token chunks (see
 * `prompt_weights.ts`), each chunk a 77-token CLIP sequence, its hidden states scaled by the
 * token weights and then rescaled to keep their mean (A1111's "Original" emphasis), chunks
 * concatenated along the token axis; a prompt and its negative padded to the same number of
 * chunks with the empty prompt's encoding.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { tensor } from "../ops/creation.ts";
import { concat } from "../ops/concat.ts";
import type { ClipTokenizer } from "./tokenizer.ts";
import { parsePromptAttention, type PromptChunk, promptChunks } from "./prompt_weights.ts";

// ids: [1, 77] -> [1, 77, H]
/** Encodes one chunk of token ids of shape `[1, T]` to hidden states `[1, T, H]`. */
export type ChunkEncoder = (ids: readonly number[], shape: readonly [number, number]) => Tensor;

/** A prompt's chunks and the notes of its parse. */
export interface PromptTokens {
  /** 77-token chunks with per-token weights. */
  chunks: PromptChunk[];
  /** Warnings about unbalanced brackets (A1111 reads them leniently). */
  warnings: string[];
}

/**
 * Parses and chunks a prompt with a CLIP tokenizer into chunks of `chunkLength` tokens plus BOS
 * and EOS (default 75: CLIP's 77 positions); commas from its vocabulary enable A1111's comma
 * backtracking.
 *
 * @example
 * ```ts
 * import { ClipTokenizer } from "./tokenizer.ts";
 * import { tokenizePrompt } from "./prompt_encode.ts";
 * const tok = new ClipTokenizer({ "<|startoftext|>": 0, "<|endoftext|>": 1, "cat</w>": 2 }, []);
 * console.log(tokenizePrompt(tok, "(cat:1.5)").chunks[0]!.weights.slice(0, 3)); // [1, 1.5, 1]
 * ```
 */
export function tokenizePrompt(
  tokenizer: ClipTokenizer,
  text: string,
  chunkLength = 75,
): PromptTokens {
  const { parts, warnings } = parsePromptAttention(text);
  const comma = tokenizer.encodeIds(",");
  const chunks = promptChunks(parts, (t) => tokenizer.encodeIds(t), {
    bos: tokenizer.bosId,
    eos: tokenizer.eosId,
    pad: tokenizer.padId,
    chunkLength,
    ...(comma.length === 1 && comma[0] !== tokenizer.eosId ? { comma: comma[0]! } : {}),
  });
  return { chunks, warnings };
}

// z: [1, T, H], weights: T -> [1, T, H]
/** `z * w` per token, rescaled so that the mean over all of `z` is unchanged (A1111's rule). */
async function weighChunk(z: Tensor, weights: readonly number[]): Promise<Tensor> {
  if (weights.every((w) => w === 1)) return z;
  const v = await z.toArray();
  const H = z.shape[2]!;
  let before = 0, after = 0;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const y = v[i]! * weights[Math.floor(i / H)]!;
    before += v[i]!;
    after += y;
    out[i] = y;
  }
  const k = after === 0 ? 1 : before / after;
  for (let i = 0; i < out.length; i++) out[i]! *= k;
  const y = tensor(out, z.shape, { dtype: z.dtype });
  z.dispose();
  return y;
}

/**
 * Encodes chunks to `[1, 77 * chunks, H]` (chunks concatenated along the tokens), weighting each
 * chunk's hidden states; `minChunks` pads with the encoding of the empty prompt.
 */
export async function encodeChunks(
  encode: ChunkEncoder,
  chunks: readonly PromptChunk[],
  padChunk: PromptChunk,
  minChunks = 0,
): Promise<Tensor> {
  const all = [...chunks];
  while (all.length < minChunks) all.push(padChunk);
  const zs: Tensor[] = [];
  try {
    for (const c of all) zs.push(await weighChunk(encode(c.ids, [1, c.ids.length]), c.weights));
    return zs.length === 1 ? zs.pop()! : concat(zs, 1);
  } finally {
    zs.forEach((z) => z.dispose());
  }
}

/** A prompt pair's contexts (of one shape) and the parse warnings. */
export interface EncodedPromptPair {
  /** The prompt's context `[1, 77 k, H]`. */
  cond: Tensor;
  /** The negative prompt's context, the same shape. */
  uncond: Tensor;
  /** Warnings about either prompt's brackets. */
  warnings: string[];
}

/**
 * Encodes a prompt and a negative prompt as A1111 does (emphasis, BREAK, 75-token chunks); the
 * one with fewer chunks is padded with the empty prompt's encoding so both have one shape.
 * `chunkLength` is the encoder's positions minus 2 (75 for CLIP).
 *
 * @example
 * ```ts ignore
 * import { encodePromptPair } from "./prompt_encode.ts";
 * const { cond, uncond } = await encodePromptPair(
 *   (ids, shape) => models.textEncoder.forward(ids, shape),
 *   models.tokenizer!,
 *   "a (red:1.2) cat BREAK on a sofa",
 *   "blurry",
 * );
 * ```
 */
export async function encodePromptPair(
  encode: ChunkEncoder,
  tokenizer: ClipTokenizer,
  prompt: string,
  negative: string,
  chunkLength = 75,
): Promise<EncodedPromptPair> {
  const [pair] = await encodePromptsSharingNegative(
    encode,
    tokenizer,
    [prompt],
    negative,
    chunkLength,
  );
  return pair!;
}

/**
 * Encodes prompts that share one negative prompt, each pair as {@link encodePromptPair} does,
 * but the negative only once per chunk count among the prompts: pairs of the same length share
 * one `uncond` tensor (dispose each distinct tensor once).
 *
 * @example
 * ```ts ignore
 * import { encodePromptsSharingNegative } from "./prompt_encode.ts";
 * const pairs = await encodePromptsSharingNegative(
 *   (ids, shape) => models.textEncoder.forward(ids, shape),
 *   models.tokenizer!,
 *   ["a cat", "a dog"],
 *   "blurry",
 * );
 * console.log(pairs[0]!.uncond === pairs[1]!.uncond); // true
 * ```
 */
export async function encodePromptsSharingNegative(
  encode: ChunkEncoder,
  tokenizer: ClipTokenizer,
  prompts: readonly string[],
  negative: string,
  chunkLength = 75,
): Promise<EncodedPromptPair[]> {
  const n = tokenizePrompt(tokenizer, negative, chunkLength);
  const empty = tokenizePrompt(tokenizer, "", chunkLength).chunks[0]!;
  const unconds = new Map<number, Tensor>();
  const pairs: EncodedPromptPair[] = [];
  try {
    for (const prompt of prompts) {
      const p = tokenizePrompt(tokenizer, prompt, chunkLength);
      const k = Math.max(p.chunks.length, n.chunks.length);
      if (!unconds.has(k)) unconds.set(k, await encodeChunks(encode, n.chunks, empty, k));
      pairs.push({
        cond: await encodeChunks(encode, p.chunks, empty, k),
        uncond: unconds.get(k)!,
        warnings: [
          ...p.warnings.map((w) => `Prompt: ${w}`),
          ...n.warnings.map((w) => `Negative prompt: ${w}`),
        ],
      });
    }
    return pairs;
  } catch (e) {
    pairs.forEach((p) => p.cond.dispose());
    unconds.forEach((u) => u.dispose());
    throw e;
  }
}
