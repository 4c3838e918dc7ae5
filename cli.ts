/**
 * The command line: `deno run -A mod.ts <command> [options]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getDevice } from "./src/ops/device.ts";

const HELP = `denoise: Stable Diffusion LoRA training and sampling on WebGPU

Usage: deno run -A mod.ts <command> [options]

Commands:
  info     Show the WebGPU adapter, its limits and features
  sample   Generate an image from a prompt (see: mod.ts sample --help)
  train    Fine-tune a LoRA (not available yet: it arrives with the trainer, roadmap step 6)
  help     Show this help

Options:
  -h, --help   Show this help`;

/** Runs the CLI with `args` and returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  if (args[0] === "sample") {
    const { sampleCommand } = await import("./cli_sample.ts");
    return await sampleCommand(args.slice(1));
  }
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { help: { type: "boolean", short: "h" } },
  });
  const cmd = positionals[0] ?? "help";
  if (values.help || cmd === "help") {
    console.log(HELP);
    return 0;
  }
  if (cmd === "info") {
    const d = await getDevice();
    console.log(`adapter: ${d.description}${d.software ? " (software)" : ""}`);
    console.log(
      `shader-f16: ${d.f16 ? "yes" : "no"}; timestamp queries: ${d.timestamps ? "yes" : "no"}`,
    );
    console.log(`max storage binding: ${d.limits.maxStorageBufferBindingSize} bytes`);
    console.log(`max buffer: ${d.limits.maxBufferSize} bytes`);
    console.log(`max 2D texture side: ${d.limits.maxTextureDimension2D}`);
    return 0;
  }
  if (cmd === "train") {
    console.error(
      "The trainer is not available yet: it arrives with roadmap step 6 (see README.md). " +
        "Today the tensor layer, samplers and model code can be imported and tested",
    );
    return 2;
  }
  console.error(`Unknown command "${cmd}"; valid commands are info, sample, train and help`);
  return 2;
}
