// Shared by the CLI tests: `mod.ts` run as a child process, and a tiny random model folder.
import { saveDiffusersFolder } from "../src/nn/loaders_fs.ts";
import { tinyModels } from "./_sd_fixture.ts";

/** The path of `mod.ts`, the CLI entry point. */
export const MOD: string = new URL("../mod.ts", import.meta.url).pathname;

/** A finished `mod.ts` run: its exit code and its decoded output. */
export interface CliRun {
  /** The exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** Runs `deno run -A mod.ts ...args` (with `env` added to this process's environment). */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, ...args],
    stdout: "piped",
    stderr: "piped",
    env,
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Writes `tinyModels(seed, norm)` as a diffusers folder at `path` and frees the models. */
export async function writeTinyModel(
  path: string,
  seed: number,
  norm: "group" | "batch" = "group",
): Promise<void> {
  const m = tinyModels(seed, norm);
  await saveDiffusersFolder(path, m);
  [m.unet, m.vae, m.textEncoder].forEach((x) => x.dispose());
}
