/**
 * Typed errors of the LoRA file readers, writers and tools. Messages are sentence case, name the
 * key, file or value that was wrong and what to do, and carry no final period.
 *
 * @module
 */
import { DenoiseError } from "../../ops/errors.ts";

/**
 * A LoRA file does not fit the model: unknown or unmatched keys, a file for another
 * architecture, a shape that does not match its module, a rank mismatch or a non-finite weight.
 */
export class LoraFileError extends DenoiseError {}

/** Lists at most `max` names for a message, with a count of the rest. */
export function listNames(names: readonly string[], max = 8): string {
  const shown = names.slice(0, max).map((n) => `"${n}"`).join(", ");
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}
