/**
 * Writes the caption tokenizer as a diffusers / Hugging Face `tokenizer/` folder (Deno):
 * `vocab.json`, `merges.txt`, `special_tokens_map.json` and `tokenizer_config.json`, each to a
 * temporary file first and then renamed into place.
 *
 * Run `deno run -A src/eval/caption_tokenizer_fs.ts <folder>`.
 *
 * @module
 */
import { learnCaptionTokenizer } from "./caption_tokenizer.ts";
import { mergesText, vocabJson } from "./bpe_learn.ts";

const BOS = "<|startoftext|>";
const EOS = "<|endoftext|>";

/**
 * Learns the caption tokenizer and writes its files into `dir` (created if missing).
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "../nn/tokenizer_fs.ts";
 * import { writeCaptionTokenizer } from "./caption_tokenizer_fs.ts";
 * const dir = await Deno.makeTempDir();
 * await writeCaptionTokenizer(dir);
 * console.log((await loadTokenizer(dir)).tokenize("two red zqstar shapes").length); // 4
 * ```
 */
export async function writeCaptionTokenizer(dir: string, maxLength = 77): Promise<void> {
  const bpe = learnCaptionTokenizer();
  const special = { bos_token: BOS, eos_token: EOS, pad_token: EOS, unk_token: EOS };
  const files: [string, string][] = [
    ["vocab.json", vocabJson(bpe)],
    ["merges.txt", mergesText(bpe)],
    ["special_tokens_map.json", JSON.stringify(special, null, 2) + "\n"],
    [
      "tokenizer_config.json",
      JSON.stringify(
        {
          ...special,
          tokenizer_class: "CLIPTokenizer",
          model_max_length: maxLength,
          do_lower_case: true,
        },
        null,
        2,
      ) + "\n",
    ],
  ];
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of files) {
    const temp = await Deno.makeTempFile({ dir, prefix: `.${name}.` });
    try {
      await Deno.writeTextFile(temp, text);
      await Deno.rename(temp, `${dir}/${name}`);
    } catch (e) {
      await Deno.remove(temp).catch(() => {});
      throw e;
    }
  }
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir) {
    console.error("Usage: deno run -A src/eval/caption_tokenizer_fs.ts <folder>");
    Deno.exit(2);
  }
  await writeCaptionTokenizer(dir);
  console.log(`wrote the caption tokenizer to ${dir}`);
}
