/**
 * kohya's sample-prompt lines (`train_util.line_to_prompt_dict`): the prompt, then options after
 * " --": `--n` negative prompt, `--w`/`--h` size, `--d` seed, `--s` steps (clamped to 1..1000),
 * `--l` CFG scale, `--ss` sampler. Lines starting with `#` and blank lines are skipped.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";

/** One sample prompt with kohya's defaults filled in. */
export interface SamplePrompt {
  /** The prompt. */
  prompt: string;
  /** The negative prompt (default empty). */
  negativePrompt: string;
  /** Width in pixels (default 512). */
  width: number;
  /** Height in pixels (default 512). */
  height: number;
  /** Sampling steps (default 30). */
  steps: number;
  /** Classifier-free guidance scale (default 7.5). */
  cfgScale: number;
  /** Seed; absent means a random one. */
  seed?: number;
  /** Sampler name; absent means the run's `--sample-sampler`. */
  sampler?: string;
  /** The 1-based line it came from. */
  line: number;
}

/** Options recognised by kohya but without meaning for SD 1.x here; ignored as kohya does. */
const IGNORED = ["g", "cn", "ctr", "rcfg", "fs"];

/**
 * Parses a prompt file's text. An option we do not know is an error naming the line.
 *
 * @example
 * ```ts
 * import { parseSamplePrompts } from "./sample_prompts.ts";
 * const [p] = parseSamplePrompts("# comment\na dog --n blurry --w 640 --d 42 --l 7 --s 28");
 * console.log(p!.prompt, p!.width, p!.seed); // a dog 640 42
 * ```
 */
export function parseSamplePrompts(text: string, file = "sample prompts"): SamplePrompt[] {
  const out: SamplePrompt[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || raw.startsWith("#")) return;
    const [prompt, ...args] = line.split(" --");
    const p: SamplePrompt = {
      prompt: prompt!.trim(),
      negativePrompt: "",
      width: 512,
      height: 512,
      steps: 30,
      cfgScale: 7.5,
      line: i + 1,
    };
    for (const arg of args) {
      const m = /^(\w+)(?:\s+(.*))?$/s.exec(arg.trim());
      const key = m?.[1]?.toLowerCase() ?? "", value = m?.[2]?.trim() ?? "";
      const int = (): number => {
        const n = /^\d+/.exec(value);
        if (!n) {
          throw new ConfigError(
            `${file} line ${i + 1}: --${key} needs a whole number, got "${value}"`,
          );
        }
        return Number(n[0]);
      };
      const num = (): number => {
        const n = /^[\d.]+/.exec(value);
        if (!n || !Number.isFinite(Number(n[0]))) {
          throw new ConfigError(`${file} line ${i + 1}: --${key} needs a number, got "${value}"`);
        }
        return Number(n[0]);
      };
      if (key === "w") p.width = int();
      else if (key === "h") p.height = int();
      else if (key === "d") p.seed = int();
      else if (key === "s") p.steps = Math.max(1, Math.min(1000, int()));
      else if (key === "l") p.cfgScale = num();
      else if (key === "n") p.negativePrompt = value;
      else if (key === "ss") p.sampler = value;
      else if (!IGNORED.includes(key)) {
        throw new ConfigError(
          `${file} line ${
            i + 1
          }: unknown option --${key}; use --n, --w, --h, --d, --s, --l or --ss`,
        );
      }
    }
    out.push(p);
  });
  return out;
}
