/**
 * Reverse-mode autograd on a tape of `GradNode`s: `record` links an op's output to its inputs,
 * `backward` walks the graph from a scalar, `checkpoint` trades compute for activation memory.
 *
 * @module
 */
import type { GradNode, PendingGrads, Tensor } from "./tensor.ts";
import { scope, untrack } from "./scope.ts";
import { fmtShape, ShapeError } from "./errors.ts";
import { add } from "./binary.ts";
import { full } from "./creation.ts";
import { inOp, inPhase, labelOp } from "./profiler.ts";

let enabled = true;

/** Whether ops currently record a graph. */
export function isGradEnabled(): boolean {
  return enabled;
}

function withMode<T>(mode: boolean, fn: () => T): T {
  const prev = enabled;
  enabled = mode;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}

/**
 * Runs `fn` without recording a graph (inference, optimizer updates).
 *
 * @example
 * ```ts
 * import { noGrad } from "./autograd.ts";
 * const n = noGrad(() => 42);
 * console.log(n);
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  return withMode(false, fn);
}

/**
 * The gradient rule of one recorded op: output gradient and saved tensors in, input grads out; a
 * rule that can add an input's gradient so far into its own takes it from `pending`.
 */
export type BackwardRule = (
  dy: Tensor,
  saved: readonly Tensor[],
  pending: PendingGrads,
) => (Tensor | null)[];

/**
 * Links `out` to `inputs` when any input requires a gradient. `saved` tensors are retained (as
 * views, outside every scope) until the backward pass has used them.
 */
export function record(
  op: string,
  inputs: readonly Tensor[],
  out: Tensor,
  saved: readonly Tensor[],
  rule: BackwardRule,
): Tensor {
  labelOp(op);
  if (!enabled || !inputs.some((t) => t.requiresGrad)) return out;
  const kept = saved.map((t) => {
    const v = t.view();
    untrack(v);
    return v;
  });
  const node: GradNode = {
    op,
    inputs,
    backward: (dy, pending = NO_PENDING) => rule(dy, kept, pending),
    release: () => kept.forEach((t) => t.dispose()),
  };
  out.requiresGrad = true;
  out.node = node;
  return out;
}

const NO_PENDING: PendingGrads = { take: () => null };

/** A new handle on the same storage, cut from the graph. */
export function detach(t: Tensor): Tensor {
  return t.view();
}

function topo(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length > 0) {
    const [t, done] = stack.pop()!;
    if (done) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const i of t.node?.inputs ?? []) {
      if (i.requiresGrad && !seen.has(i)) stack.push([i, false]);
    }
  }
  return order;
}

function accumulate(into: Tensor | undefined | null, g: Tensor): Tensor {
  if (!into) return g;
  const s = add(into, g);
  into.dispose();
  g.dispose();
  return s;
}

/**
 * Back-propagates from `root` (a scalar, or any tensor with an explicit `seed` gradient), adding
 * into `.grad` of every leaf that requires a gradient. The graph is freed as it is walked.
 *
 * @example
 * ```ts
 * import { backward, getDevice, mul, sum, tensor } from "../../mod.ts";
 * await getDevice();
 * const x = tensor([1, 2, 3], [3], { requiresGrad: true });
 * backward(sum(mul(x, x)));
 * console.log(await x.grad!.toArray()); // 2, 4, 6
 * ```
 */
export function backward(root: Tensor, seed?: Tensor): void {
  if (!root.requiresGrad) {
    throw new ShapeError(
      "backward() was called on a tensor that does not require a gradient; " +
        "mark a parameter with requiresGrad: true before the forward pass",
    );
  }
  if (!seed && root.size !== 1) {
    throw new ShapeError(
      `backward() needs a scalar, got shape ${fmtShape(root.shape)}; reduce it (sum, mean) first`,
    );
  }
  inPhase("backward", () =>
    noGrad(() => {
      const grads = new Map<Tensor, Tensor>();
      const first = seed ? seed.view() : full(root.shape, 1);
      untrack(first);
      grads.set(root, first);
      const order = topo(root).reverse();
      for (const t of order) {
        const dy = grads.get(t);
        if (!dy) continue;
        grads.delete(t);
        const node = t.node;
        if (!node) {
          const g = accumulate(t.grad, dy);
          untrack(g);
          t.grad = g;
          continue;
        }
        // gradients a rule took from `pending`: its own already include them
        const taken = new Map<number, Tensor>();
        const pending: PendingGrads = {
          take: (i) => {
            const inp = node.inputs[i];
            const g = inp && !taken.has(i) ? grads.get(inp) : undefined;
            if (!inp || !g) return null;
            grads.delete(inp);
            taken.set(i, g);
            return g;
          },
        };
        const gs = inOp(node.op, () => scope(() => node.backward(dy, pending)));
        dy.dispose();
        node.release();
        t.node = null;
        node.inputs.forEach((inp, i) => {
          const g = gs[i];
          const had = taken.get(i);
          if (had && !g) {
            throw new Error(
              `The gradient rule of ${node.op} took a pending gradient and returned none; this is a bug in that op`,
            );
          }
          had?.dispose();
          if (!g) return;
          if (!inp.requiresGrad) return g.dispose();
          if (g.shape.join() !== inp.shape.join()) {
            throw new ShapeError(
              `The gradient rule of ${node.op} returned shape ${
                fmtShape(g.shape)
              } for an input of ` +
                `shape ${fmtShape(inp.shape)}; this is a bug in that op`,
            );
          }
          const acc = had ? g : accumulate(grads.get(inp), g);
          untrack(acc);
          grads.set(inp, acc);
        });
      }
      for (const g of grads.values()) g.dispose();
    }));
}

/**
 * Gradient checkpointing: runs `fn` without keeping its activations, and re-runs it during the
 * backward pass to get the gradients of its inputs and of the parameters it uses.
 *
 * @example
 * ```ts
 * import { checkpoint, getDevice, silu, tensor } from "../../mod.ts";
 * await getDevice();
 * const x = tensor([1, -1], [2], { requiresGrad: true });
 * const y = checkpoint((a) => silu(silu(a)), [x]);
 * console.log(y.shape);
 * ```
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[]): Tensor {
  // the scope frees fn's intermediates now; only its output lives on
  const out = scope(() => noGrad(() => fn(...inputs)));
  if (!enabled) return out;
  const kept = inputs.map((t) => {
    const v = t.view();
    untrack(v);
    return v;
  });
  const node: GradNode = {
    op: "checkpoint",
    inputs,
    backward: (dy) => {
      const leaves = kept.map((k, i) => {
        const v = k.view();
        v.requiresGrad = inputs[i]!.requiresGrad;
        return v;
      });
      const again = withMode(true, () => fn(...leaves));
      if (again.requiresGrad) backward(again, dy);
      return leaves.map((l) => {
        const g = l.grad;
        l.grad = null;
        return g;
      });
    },
    release: () => kept.forEach((t) => t.dispose()),
  };
  out.requiresGrad = true;
  out.node = node;
  return out;
}
