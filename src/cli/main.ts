/**
 * The command line: `deno run -A mod.ts <command> [options]`. One dispatcher for every command
 * and one error handler: usage errors exit 2 with the command's help hint, failures exit 1 with
 * a one-line cause and its fix (`--debug` adds the stack), and every exit path first drains the
 * GPU's work and releases the device.
 *
 * @module
 */
import denoJson from "../../deno.json" with { type: "json" };
import { deviceInfo } from "../ops/device.ts";
import { DenoiseError } from "../ops/errors.ts";
import { startProfiling } from "../ops/profiler.ts";
import { reportProfile } from "../ops/profiler_fs.ts";
import { escapeControls, quote } from "../nn/_untrusted.ts";
import { UsageError } from "./_args.ts";
import { ensureRuntimeDir } from "./runtime_dir.ts";

/** The package version (from deno.json). */
export const VERSION: string = denoJson.version;

/** A command of the CLI: its name, one line for the overview, and its entry point. */
export interface Command {
  /** The word after `mod.ts`. */
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Runs the command with the arguments after its name; returns the exit code. */
  readonly run: (args: string[]) => Promise<number>;
}

/** Every command, in help order. Add a command here (its module loads on first use). */
export const COMMANDS: readonly Command[] = [
  {
    name: "info",
    summary: "Show the WebGPU adapter, its limits and features",
    run: async (args) => (await import("./info.ts")).infoCommand(args),
  },
  {
    name: "sample",
    summary: "Generate an image from a prompt (see: mod.ts sample --help)",
    run: async (args) => (await import("./sample.ts")).sampleCommand(args),
  },
  {
    name: "lora",
    summary: "Plan, inspect and merge LoRAs (see: mod.ts lora --help)",
    run: async (args) => (await import("./lora.ts")).loraCommand(args),
  },
  {
    name: "train",
    summary: "Train a LoRA, kohya style (see: mod.ts train --help)",
    run: async (args) => (await import("./train.ts")).trainCommand(args),
  },
  {
    name: "pretrain",
    summary: "Pretrain the bundled mini SD on the procedural world (see: mod.ts pretrain --help)",
    run: async (args) => (await import("./pretrain.ts")).pretrainCommand(args),
  },
  {
    name: "eval",
    summary: "Measure a mini SD against issue 11's targets (see: mod.ts eval --help)",
    run: async (args) => (await import("./eval.ts")).evalCommand(args),
  },
];

/** Help text of the CLI. */
export const HELP: string =
  `denoise ${VERSION}: Stable Diffusion LoRA training and sampling on WebGPU

Usage: deno run -A mod.ts <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(8)} ${c.summary}`).join("\n")}
  help     Show this help

Options:
  -h, --help     Show this help (after a command: that command's help)
  --version      Show the version
  --debug        On an error, show the stack trace as well
  --profile      Time every GPU dispatch; print a per-kernel table and write denoise_profile.json`;

function hint(command: string | undefined): string {
  return command
    ? `Run "deno run -A mod.ts ${command} --help" for its options`
    : 'Run "deno run -A mod.ts --help" for the commands';
}

/** Prints an error as one line (the stack too with `debug`) and returns the exit code. */
function report(e: unknown, command: string | undefined, debug: boolean): number {
  const err = e instanceof Error ? e : new Error(String(e));
  const line = escapeControls(err.message.split("\n")[0] ?? "");
  if (err instanceof UsageError) {
    console.error(`error: ${line}\n${hint(err.command ?? command)}`);
    return 2;
  }
  if (err instanceof DenoiseError) console.error(`error: ${line}`);
  else {
    console.error(
      `error: ${err.name}: ${line}\nThis is unexpected: rerun with --debug and report the ` +
        "stack trace to the denoise authors",
    );
  }
  if (debug && err.stack) console.error(err.stack.split("\n").map(escapeControls).join("\n"));
  return 1;
}

/** Waits for the GPU's submitted work, then destroys the device (if one was created). */
async function releaseDevice(): Promise<void> {
  let device: GPUDevice;
  try {
    device = deviceInfo().device;
  } catch {
    return; // no device was created
  }
  try {
    await device.queue.onSubmittedWorkDone();
  } finally {
    device.destroy();
  }
}

async function dispatch(args: string[]): Promise<[number, string | undefined]> {
  const first = args[0];
  if (first === undefined || first === "help" || first === "-h" || first === "--help") {
    console.log(HELP);
    return [0, undefined];
  }
  if (first === "--version") {
    console.log(`denoise ${VERSION}`);
    return [0, undefined];
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (!command) {
    throw new UsageError(
      first.startsWith("-")
        ? `Unknown option ${quote(first)} before the command`
        : `Unknown command ${quote(first)}; valid commands are ${
          COMMANDS.map((c) => c.name).join(", ")
        } and help`,
    );
  }
  return [await command.run(args.slice(1)), command.name];
}

/**
 * Runs the CLI with `args` and returns the process exit code: 0 on success, 1 on a failure,
 * 2 on a usage error. `--debug` anywhere in `args` adds the stack to error reports. Every path
 * releases the GPU device before returning.
 *
 * @example
 * ```ts ignore
 * import { main } from "./main.ts";
 * Deno.exit(await main(["info"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  ensureRuntimeDir();
  const debug = args.includes("--debug");
  const profiled = args.includes("--profile");
  const rest = args.filter((a) => a !== "--debug" && a !== "--profile");
  if (profiled) startProfiling();
  const name = COMMANDS.find((c) => c.name === rest[0])?.name;
  let code: number;
  try {
    [code] = await dispatch(rest);
  } catch (e) {
    code = report(e, name, debug);
  }
  if (profiled) await reportProfile().catch((e) => report(e, name, debug));
  try {
    await releaseDevice();
  } catch (e) {
    code = Math.max(code, report(e, name, debug));
  }
  return code;
}
