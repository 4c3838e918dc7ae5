// Helpers of the trainer tests (no GPU): error assertions that name the expected text.
import { rejects, throws } from "node:assert/strict";

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => Error;

function matches(e: unknown, cls: ErrorClass, text: string): boolean {
  if (e instanceof cls && e.message.includes(text)) return true;
  throw new Error(`expected ${cls.name} containing "${text}", got ${String(e)}`);
}

/** Asserts that `fn` throws a `cls` whose message contains `text`. */
export function throwsWith(fn: () => unknown, cls: ErrorClass, text: string): void {
  throws(fn, (e: unknown) => matches(e, cls, text));
}

/** Asserts that `fn` rejects with a `cls` whose message contains `text`. */
export async function rejectsWith(
  fn: () => Promise<unknown>,
  cls: ErrorClass,
  text: string,
): Promise<void> {
  await rejects(fn, (e: unknown) => matches(e, cls, text));
}
