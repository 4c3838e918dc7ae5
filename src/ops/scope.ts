/**
 * Deterministic freeing: `scope(fn)` disposes every tensor created inside `fn` except those it
 * returns (and those handed out of it with `untrack`).
 *
 * @module
 */

/** Anything that can be disposed and tracked by a scope. */
export interface Disposable {
  /** Frees what the object holds. */
  dispose(): void;
}

const stack: Set<Disposable>[] = [];

/** Registers a new tensor with the innermost open scope. */
export function track(t: Disposable): void {
  stack[stack.length - 1]?.add(t);
}

/**
 * Removes a tensor from every open scope, so it outlives them (e.g. gradients, parameters), and
 * returns it.
 */
export function untrack<T extends Disposable>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

function collect(v: unknown, out: Set<unknown>): void {
  if (v === null || typeof v !== "object") return;
  if (out.has(v)) return;
  out.add(v);
  if (Array.isArray(v)) { for (const x of v) collect(x, out); }
  else if (Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v)) collect(x, out);
  }
}

function finish<T>(own: Set<Disposable>, result: T): T {
  stack.pop();
  const keep = new Set<unknown>();
  collect(result, keep);
  const parent = stack[stack.length - 1];
  for (const t of own) {
    if (keep.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/**
 * Runs `fn` and disposes every tensor created inside it, except the tensors found in its result
 * (a tensor, or arrays / plain objects of tensors), which move to the enclosing scope.
 * Works with sync and async functions.
 *
 * @example
 * ```ts
 * import { scope } from "./scope.ts";
 * const y = scope(() => {
 *   // const a = ...; const b = ...;  // freed on exit
 *   return 1;
 * });
 * console.log(y);
 * ```
 */
export function scope<T>(fn: () => T): T {
  const own = new Set<Disposable>();
  stack.push(own);
  let r: T;
  try {
    r = fn();
  } catch (e) {
    finish(own, undefined);
    throw e;
  }
  if (r instanceof Promise) {
    return r.then((v) => finish(own, v), (e) => {
      finish(own, undefined);
      throw e;
    }) as T;
  }
  return finish(own, r);
}
