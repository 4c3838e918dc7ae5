/**
 * Resizing a LoRA to another rank by SVD, as kohya's `networks/resize_lora.py`: each module's
 * `up @ down` is decomposed, the new rank is fixed (`rank`, or dynamically by `sv_ratio`,
 * `sv_fro` or `sv_cumulative` with kohya's index rules and its cap at `rank`), then
 * `down = Vt[:r]`, `up = U[:, :r] S[:r]` and `alpha = scale * r`, so the scale alpha / r is kept.
 *
 * @module
 */
import type { LoraEntry } from "./file_types.ts";
import { entryScale } from "./formats/delta.ts";
import { LoraFileError } from "./formats/errors.ts";
import { lowRankSvd } from "./svd.ts";

/** kohya's dynamic rank methods. */
export type DynamicMethod = "sv_ratio" | "sv_fro" | "sv_cumulative";

/** Options of {@link resizeEntries}. */
export interface ResizeOptions {
  /** New rank of linear and 1x1 modules; with `dynamic`, the most a module may keep. */
  rank: number;
  /** New rank of k x k convs (default `rank`). */
  convRank?: number;
  /** Pick each module's rank from its singular values instead. */
  dynamic?: { method: DynamicMethod; param: number };
}

/** What happened to one module. */
export interface ResizeModuleReport {
  /** Module path. */
  path: string;
  /** Rank before. */
  oldRank: number;
  /** Rank after. */
  newRank: number;
  /** Alpha written. */
  newAlpha: number;
  /** sqrt(sum of kept S^2) / sqrt(sum of S^2). */
  froRetained: number;
  /** sum of kept S / sum of S. */
  sumRetained: number;
}

const MIN_SV = 1e-6;

// First index whose value is >= target (torch.searchsorted, left side).
function searchsorted(sorted: readonly number[], target: number): number {
  let i = 0;
  while (i < sorted.length && sorted[i]! < target) i++;
  return i;
}

function cumulative(values: readonly number[]): number[] {
  const total = values.reduce((a, b) => a + b, 0);
  let acc = 0;
  return values.map((v) => (acc += v) / total);
}

/**
 * The new rank for singular values `s` (descending, padded with zeros to min(out, in) as
 * `torch.linalg.svd` gives them), exactly as kohya's `rank_resize`.
 */
export function resizedRank(s: readonly number[], rank: number, options: ResizeOptions): number {
  const clamp = (i: number) => Math.max(1, Math.min(i, s.length - 1));
  let r = rank;
  const d = options.dynamic;
  if (d?.method === "sv_ratio") {
    const min = s[0]! / d.param;
    r = clamp(s.filter((v) => v > min).length) + 1;
  } else if (d?.method === "sv_cumulative") {
    r = clamp(searchsorted(cumulative(s), d.param) + 1) + 1;
  } else if (d?.method === "sv_fro") {
    r = clamp(searchsorted(cumulative(s.map((v) => v * v)), d.param * d.param) + 1) + 1;
  }
  if (s[0]! <= MIN_SV) return 1;
  return Math.min(r, rank);
}

function checkOptions(o: ResizeOptions): void {
  for (const [name, v] of [["rank", o.rank], ["conv rank", o.convRank ?? o.rank]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new LoraFileError(`The ${name} must be a whole number of at least 1; got ${v}`);
    }
  }
  const d = o.dynamic;
  if (d && !(d.param > 0 && (d.method === "sv_ratio" ? d.param >= 1 : d.param <= 1))) {
    throw new LoraFileError(
      `The ${d.method} target must be ${
        d.method === "sv_ratio" ? "at least 1 (a ratio of singular values)" : "in (0, 1]"
      }; got ${d.param}`,
    );
  }
}

/**
 * Resizes every plain LoRA / LoCon entry; LoHa, LoKr, Tucker, full, norm and DoRA entries pass
 * through unchanged and are listed in `unchanged`.
 *
 * @example
 * ```ts
 * import { resizeEntries } from "./svd_resize.ts";
 * const { entries, report } = resizeEntries([{
 *   component: "unet", path: "a.to_q", kind: "lora", alpha: 4, tensors: {},
 *   down: { shape: [4, 3], data: new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]) },
 *   up: { shape: [2, 4], data: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]) },
 * }], { rank: 2 });
 * console.log(entries[0]?.down?.shape, report[0]?.newAlpha); // [2, 3] 2
 * ```
 */
export function resizeEntries(
  entries: readonly LoraEntry[],
  options: ResizeOptions,
): { entries: LoraEntry[]; report: ResizeModuleReport[]; unchanged: string[] } {
  checkOptions(options);
  const out: LoraEntry[] = [], report: ResizeModuleReport[] = [], unchanged: string[] = [];
  for (const e of entries) {
    if (e.kind !== "lora" || !e.down || !e.up || e.mid || e.tensors["dora_scale"]) {
      out.push(e);
      unchanged.push(e.path);
      continue;
    }
    const r = e.down.shape[0]!, m = e.up.shape[0]!, n = e.down.data.length / r;
    const conv = e.down.shape.length === 4 && e.down.shape.slice(2).some((d) => d !== 1);
    const target = conv ? options.convRank ?? options.rank : options.rank;
    const f = lowRankSvd(e.up.data, e.down.data, m, r, n);
    const s = [...f.s, ...Array(Math.max(0, Math.min(m, n) - r)).fill(0)];
    const nr = Math.min(resizedRank(s, target, options), r);
    const scale = entryScale(e);
    const down = new Float32Array(nr * n), up = new Float32Array(m * nr);
    for (let t = 0; t < nr; t++) {
      for (let i = 0; i < n; i++) down[t * n + i] = f.vt[t * n + i]!;
      for (let i = 0; i < m; i++) up[i * nr + t] = f.u[i * r + t]! * f.s[t]!;
    }
    const sq = s.reduce((a, v) => a + v * v, 0), kept = s.slice(0, nr);
    out.push({
      ...e,
      down: { shape: [nr, ...e.down.shape.slice(1)], data: down },
      up: { shape: [m, nr, ...e.up.shape.slice(2)], data: up },
      alpha: scale * nr,
    });
    report.push({
      path: e.path,
      oldRank: r,
      newRank: nr,
      newAlpha: scale * nr,
      froRetained: sq > 0 ? Math.sqrt(kept.reduce((a, v) => a + v * v, 0) / sq) : 1,
      sumRetained: kept.reduce((a, v) => a + v, 0) / (s.reduce((a, v) => a + v, 0) || 1),
    });
  }
  return { entries: out, report, unchanged };
}
