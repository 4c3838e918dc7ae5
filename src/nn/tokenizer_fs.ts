/**
 * Loading the CLIP tokenizer from disk (Deno).
 *
 * @module
 */
import { ClipTokenizer, type ClipTokenizerOptions } from "./tokenizer.ts";
import { TokenizerError } from "./errors.ts";
import { quote } from "./_untrusted.ts";

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * Loads a CLIP tokenizer from a folder holding `vocab.json` and `merges.txt` (a diffusers
 * `tokenizer/` folder, or a model folder that contains one). The pad token comes from
 * `special_tokens_map.json` when present (SD 1.x: `<|endoftext|>`, SD 2.x: `!`) unless
 * `options.padToken` is given.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./tokenizer_fs.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/vocab.json`, '{"<|startoftext|>": 0, "<|endoftext|>": 1}');
 * await Deno.writeTextFile(`${dir}/merges.txt`, "#version: 0.2\n");
 * const tok = await loadTokenizer(dir);
 * console.log(tok.encode("", { padding: false }).ids); // [0, 1]
 * ```
 */
export async function loadTokenizer(
  folder: string,
  options: ClipTokenizerOptions = {},
): Promise<ClipTokenizer> {
  let dir = folder.replace(/[/\\]+$/, "");
  if (!(await exists(`${dir}/vocab.json`)) && (await exists(`${dir}/tokenizer/vocab.json`))) {
    dir = `${dir}/tokenizer`;
  }
  const read = async (name: string): Promise<string> => {
    try {
      // a FIFO or a device would block the read forever
      if (!(await Deno.stat(`${dir}/${name}`)).isFile) throw new Error("not a regular file");
      return await Deno.readTextFile(`${dir}/${name}`);
    } catch (e) {
      throw new TokenizerError(
        `Cannot read ${quote(`${dir}/${name}`, 200)} (${
          quote((e as Error).message)
        }); pass a tokenizer folder holding vocab.json and merges.txt`,
      );
    }
  };
  const [vocab, merges] = await Promise.all([read("vocab.json"), read("merges.txt")]);
  const opts: ClipTokenizerOptions = { source: dir, ...options };
  if (opts.padToken === undefined && (await exists(`${dir}/special_tokens_map.json`))) {
    try {
      const map = JSON.parse(await Deno.readTextFile(`${dir}/special_tokens_map.json`));
      const pad = map?.pad_token;
      const token = typeof pad === "string" ? pad : pad?.content;
      if (typeof token === "string") opts.padToken = token;
    } catch (e) {
      throw new TokenizerError(
        `Cannot read "${dir}/special_tokens_map.json" (${(e as Error).message}); fix or remove ` +
          "it, or pass padToken",
      );
    }
  }
  return ClipTokenizer.fromText(vocab, merges, opts);
}
