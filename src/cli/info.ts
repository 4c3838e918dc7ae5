/**
 * `mod.ts info`: the WebGPU adapter, its limits and features.
 *
 * @module
 */
import { getDevice } from "../ops/device.ts";
import { escapeControls } from "../nn/_untrusted.ts";
import { formatOptions, type OptionTable, parseOptions } from "./_args.ts";

/** The options of `info`. */
export const INFO_OPTIONS = {
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies OptionTable;

/** Help text of `info`. */
export const INFO_HELP: string = `Usage: deno run -A mod.ts info

Shows the WebGPU adapter, its limits and features.

Options:
${formatOptions(INFO_OPTIONS)}`;

/**
 * Runs `info` with its arguments (after the command name); returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { infoCommand } from "./info.ts";
 * await infoCommand([]);
 * ```
 */
export async function infoCommand(args: string[]): Promise<number> {
  if (parseOptions(args, INFO_OPTIONS, "info").help) {
    console.log(INFO_HELP);
    return 0;
  }
  const d = await getDevice();
  console.log(`adapter: ${escapeControls(d.description)}${d.software ? " (software)" : ""}`);
  console.log(
    `shader-f16: ${d.f16 ? "yes" : "no"}; timestamp queries: ${d.timestamps ? "yes" : "no"}`,
  );
  console.log(`max storage binding: ${d.limits.maxStorageBufferBindingSize} bytes`);
  console.log(`max buffer: ${d.limits.maxBufferSize} bytes`);
  console.log(`max 2D texture side: ${d.limits.maxTextureDimension2D}`);
  return 0;
}
