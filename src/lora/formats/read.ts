/**
 * Reading LoRA files of every family into {@link LoraFileContents}, matched and checked against
 * a model: kohya (diffusers-style and LDM-style SD 1.x names, alpha of any dtype, missing alpha =
 * scale 1, F16/F32/BF16), PEFT / diffusers (`lora_A` / `lora_B` with alphas from the
 * `lora_adapter_metadata` JSON, and the older `.lora.down` and `to_q_lora` forms) and LyCORIS
 * (LoHa, LoKr, Tucker LoCon, full, DoRA, norm deltas).
 *
 * @module
 */
import type { SafetensorsReader } from "../../nn/safetensors.ts";
import type {
  HostTensor,
  LoraEntry,
  LoraEntryKind,
  LoraFamily,
  LoraFileContents,
} from "../file_types.ts";
import { groupKohyaKeys, groupPeftKeys, isKohyaKey, type KeyGroup } from "./_groups.ts";
import { LoraFileError } from "./errors.ts";
import {
  architectureError,
  architectureFromWidth,
  buildModuleIndex,
  foreignArchitecture,
  unmatchedMessage,
} from "./match.ts";
import type { LoraModelShapes, LoraModuleShape } from "./model_shapes.ts";
import { peftAlphas } from "./peft_metadata.ts";

/** Options of {@link readLora}. */
export interface ReadLoraOptions {
  /** Skip keys that match no module, with a warning listing them, instead of failing. */
  lenient?: boolean;
  /** Receives warnings (default `console.warn`). */
  onWarning?: (message: string) => void;
}

interface Matched {
  group: KeyGroup;
  module: LoraModuleShape;
}

const fmt = (s: readonly number[]): string => `[${s.join(", ")}]`;
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** Keys of AdaBN statistics (`adabn.` and `adabn_band<k>.`), skipped by {@link readLora}. */
const ADABN_KEY = /^adabn(_band\d+)?\./;

/**
 * Reads a LoRA file of any supported family and matches every key against the model. Throws
 * {@link LoraFileError} naming the keys for unknown or unmatched keys (a warning instead with
 * `lenient`), a file for another architecture (SDXL, SD 2.x), a shape that does not fit its
 * module, a down/up rank mismatch, or a non-finite weight.
 *
 * @example
 * ```ts
 * import { SafetensorsReader, serializeSafetensors } from "../../nn/safetensors.ts";
 * import { readLora } from "./read.ts";
 * const name = "lora_unet_mid_block_attentions_0_proj_in";
 * const bytes = serializeSafetensors({
 *   [`${name}.lora_down.weight`]: { data: new Float32Array(8), shape: [1, 8, 1, 1] },
 *   [`${name}.lora_up.weight`]: { data: new Float32Array(8), shape: [8, 1, 1, 1] },
 * });
 * const lora = await readLora(await SafetensorsReader.fromBytes(bytes), {
 *   modules: [{ component: "unet", path: "mid_block.attentions.0.proj_in", kind: "conv", weight: [8, 8, 1, 1], hasBias: true }],
 * });
 * console.log(lora.family, lora.entries[0]?.path); // kohya mid_block.attentions.0.proj_in
 * ```
 */
export async function readLora(
  reader: SafetensorsReader,
  model: LoraModelShapes,
  options: ReadLoraOptions = {},
): Promise<LoraFileContents> {
  const file = reader.name;
  // AdaBN statistics ride in LoRA files under their own prefixes (src/adabn/file.ts); they are
  // not adapter weights, so the reader leaves them to src/adabn
  const keys = reader.keys.filter((k) => !ADABN_KEY.test(k));
  const metadata = { ...reader.metadata };
  const arch = foreignArchitecture(keys, metadata);
  if (arch) throw architectureError(file, arch);
  if (keys.length === 0) {
    throw new LoraFileError(`"${file}" holds no tensors; pass a LoRA file`);
  }
  const kohya = keys.some(isKohyaKey);
  const { groups, unknown } = kohya ? groupKohyaKeys(keys.filter(isKohyaKey)) : groupPeftKeys(keys);
  if (kohya) unknown.push(...keys.filter((k) => !isKohyaKey(k)));

  const index = buildModuleIndex(model);
  const matched: Matched[] = [];
  for (const group of groups.values()) {
    const module = group.component
      ? index.paths.get(`${group.component}:${group.name}`)
      : index.kohya.get(group.name);
    if (module) matched.push({ group, module });
    else unknown.push(...group.keys.values());
  }
  // A file for another architecture shows in the input width of its cross-attention or
  // text-encoder modules; say so before listing keys that would not match.
  for (const { group, module } of matched) {
    const key = group.keys.get("down") ?? group.keys.get("hada_w1_b");
    if (!key || module.kind === "norm") continue;
    const fileIn = reader.info(key).shape[1]!;
    const a = architectureFromWidth(module.component, module.path, fileIn, module.weight[1]!);
    if (a) throw architectureError(file, a);
  }
  if (unknown.length > 0) {
    const message = unmatchedMessage(file, unknown, options.lenient ?? false);
    if (!options.lenient) throw new LoraFileError(message);
    (options.onWarning ?? console.warn)(message);
  }

  const alphas = kohya ? undefined : peftAlphas(metadata);
  const entries: LoraEntry[] = [];
  for (const { group, module } of matched) {
    const t: Record<string, HostTensor> = {};
    for (const [suffix, key] of group.keys) {
      const data = await reader.read(key);
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i])) {
          throw new LoraFileError(
            `"${key}" in "${file}" holds a non-finite value (${data[i]}) at element ${i}; the ` +
              "LoRA is broken (often a NaN loss in training), so use an earlier save",
          );
        }
      }
      t[suffix] = { shape: [...reader.info(key).shape], data };
    }
    const entry = buildEntry(group, module, t);
    if (alphas && entry.alpha === undefined && entry.down) {
      const a = alphas(module.component, module.path, entry.down.shape[0]!);
      if (a !== undefined) entry.alpha = a;
    }
    entries.push(entry);
  }
  return { family: familyOf(kohya, entries), entries, metadata };
}

function familyOf(kohya: boolean, entries: readonly LoraEntry[]): LoraFamily {
  if (!kohya) return "peft";
  const lycoris = entries.some((e) =>
    e.kind !== "lora" || e.mid !== undefined || e.tensors["dora_scale"] !== undefined
  );
  return lycoris ? "lycoris" : "kohya";
}

function kindOf(group: KeyGroup): LoraEntryKind {
  const s = [...group.keys.keys()];
  const kinds = new Set<LoraEntryKind>();
  for (const k of s) {
    if (k === "down" || k === "up" || k === "mid") kinds.add("lora");
    else if (k.startsWith("hada_")) kinds.add("loha");
    else if (k.startsWith("lokr_")) kinds.add("lokr");
    else if (k === "diff" || k === "diff_b") kinds.add("full");
    else if (k === "w_norm" || k === "b_norm") kinds.add("norm");
  }
  if (kinds.size !== 1) {
    throw new LoraFileError(
      `Module "${group.name}" has ${
        kinds.size === 0
          ? "no weight tensors"
          : `tensors of several kinds (${[...kinds].join(", ")})`
      }: ${[...group.keys.values()].map((k) => `"${k}"`).join(", ")}; the file is damaged or ` +
        "mixes formats, so export it again",
    );
  }
  return [...kinds][0]!;
}

function buildEntry(
  group: KeyGroup,
  module: LoraModuleShape,
  t: Record<string, HostTensor>,
): LoraEntry {
  const kind = kindOf(group);
  const names: Record<string, string> = group.component
    ? { down: "lora_A.weight", up: "lora_B.weight" }
    : { down: "lora_down.weight", up: "lora_up.weight", mid: "lora_mid.weight" };
  const key = (s: string): string => group.keys.get(s) ?? `${group.name}.${names[s] ?? s}`;
  const W = module.weight;
  const wrongModule = (what: string): LoraFileError =>
    new LoraFileError(
      `"${key(Object.keys(t)[0]!)}" is a ${what} delta, but module "${module.path}" is a ` +
        `${module.kind} layer with weight ${fmt(W)}; the file was made for a different model`,
    );
  if ((kind === "norm") !== (module.kind === "norm")) {
    throw wrongModule(kind === "norm" ? "norm" : "weight");
  }
  const entry: LoraEntry = {
    component: module.component,
    path: module.path,
    kind,
    tensors: {},
    moduleShape: [...W],
  };
  const alpha = t["alpha"];
  if (alpha) {
    if (alpha.data.length !== 1) {
      throw new LoraFileError(
        `"${key("alpha")}" has shape ${fmt(alpha.shape)}, but an alpha is one number; the file ` +
          "is damaged, so export it again",
      );
    }
    entry.alpha = alpha.data[0]!;
  }
  const expect = (s: string, want: readonly number[]): void => {
    const got = t[s]!;
    if (numel(got.shape) !== numel(want) || !sameUpToOnes(got.shape, want)) {
      throw new LoraFileError(
        `"${key(s)}" has shape ${fmt(got.shape)}, but module "${module.path}" (weight ` +
          `${fmt(W)}) needs ${fmt(want)}; the file was made for a different model`,
      );
    }
    got.shape = [...want];
  };
  const rank = (a: string, ai: number, b: string, bi: number): number => {
    const ra = t[a]!.shape[ai], rb = t[b]!.shape[bi];
    if (ra !== rb) {
      throw new LoraFileError(
        `Rank mismatch in module "${group.name}": "${key(a)}" has rank ${ra} but "${key(b)}" ` +
          `has rank ${rb}; the file is damaged, so export it again`,
      );
    }
    return ra ?? 0;
  };
  const require = (...names: string[]): void => {
    const missing = names.filter((n) => !t[n]);
    if (missing.length > 0) {
      throw new LoraFileError(
        `Module "${group.name}" lacks ${missing.map((n) => `"${key(n)}"`).join(", ")}; the ` +
          "file is incomplete, so export it again",
      );
    }
  };
  const out = W[0]!, inCh = W[1] ?? 1, k = W.slice(2), K = numel(k);
  const conv = W.length === 4;
  switch (kind) {
    case "lora": {
      require("down", "up");
      const r = rank("down", 0, "up", 1);
      if (t["mid"]) {
        rank("mid", 0, "up", 1);
        rank("mid", 1, "down", 0);
        expect("mid", [r, r, ...k]);
        expect("down", conv ? [r, inCh, 1, 1] : [r, inCh]);
      } else {
        expect("down", conv ? [r, inCh, ...k] : [r, inCh]);
      }
      expect("up", conv ? [out, r, 1, 1] : [out, r]);
      entry.down = t["down"]!;
      entry.up = t["up"]!;
      if (t["mid"]) entry.mid = t["mid"];
      break;
    }
    case "loha": {
      require("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b");
      if (t["hada_t1"] || t["hada_t2"]) {
        require("hada_t1", "hada_t2");
        for (const n of ["1", "2"]) {
          const r = rank(`hada_w${n}_a`, 0, `hada_w${n}_b`, 0);
          expect(`hada_t${n}`, [r, r, ...k]);
          expect(`hada_w${n}_a`, [r, out]);
          expect(`hada_w${n}_b`, [r, inCh]);
        }
      } else {
        for (const n of ["1", "2"]) {
          const r = rank(`hada_w${n}_a`, 1, `hada_w${n}_b`, 0);
          expect(`hada_w${n}_a`, [out, r]);
          expect(`hada_w${n}_b`, [r, inCh * K]);
        }
      }
      break;
    }
    case "lokr":
      checkLokr(t, key, module, rank);
      break;
    case "full":
      require("diff");
      expect("diff", W);
      if (t["diff_b"]) expect("diff_b", [out]);
      break;
    case "norm":
      if (t["w_norm"]) expect("w_norm", [out]);
      if (t["b_norm"]) expect("b_norm", [out]);
      if (t["w_norm"]) entry.wNorm = t["w_norm"];
      if (t["b_norm"]) entry.bNorm = t["b_norm"];
      break;
  }
  const dora = t["dora_scale"] ?? magnitude(t["magnitude"], W.length);
  if (dora) {
    const n = dora.data.length;
    if (n !== out && n !== inCh) {
      throw new LoraFileError(
        `"${key(t["dora_scale"] ? "dora_scale" : "magnitude")}" has shape ${fmt(dora.shape)}, ` +
          `which fits neither the ${out} outputs nor the ${inCh} inputs of module ` +
          `"${module.path}"; the file was made for a different model`,
      );
    }
    t["dora_scale"] = dora;
  }
  delete t["magnitude"];
  for (const [s, v] of Object.entries(t)) {
    if (!["down", "up", "mid", "alpha", "w_norm", "b_norm"].includes(s)) entry.tensors[s] = v;
  }
  return entry;
}

// PEFT's DoRA magnitude is a per-output vector: the output-axis dora_scale.
function magnitude(m: HostTensor | undefined, dims: number): HostTensor | undefined {
  if (!m) return undefined;
  return { shape: [m.data.length, ...Array(dims - 1).fill(1)], data: m.data };
}

// Same dimensions once size-1 dimensions are dropped ([r, in, 1, 1] fits [r, in]).
function sameUpToOnes(a: readonly number[], b: readonly number[]): boolean {
  const x = a.filter((d) => d !== 1), y = b.filter((d) => d !== 1);
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

function checkLokr(
  t: Record<string, HostTensor>,
  key: (s: string) => string,
  module: LoraModuleShape,
  rank: (a: string, ai: number, b: string, bi: number) => number,
): void {
  const W = module.weight;
  const dims = (n: 1 | 2): [number, number] => {
    const full = t[`lokr_w${n}`];
    if (full) return [full.shape[0]!, numel(full.shape.slice(1))];
    const a = t[`lokr_w${n}_a`], b = t[`lokr_w${n}_b`];
    if (!a || !b) {
      throw new LoraFileError(
        `LoKr module "${module.path}" needs "${key(`lokr_w${n}`)}" or both ` +
          `"${key(`lokr_w${n}_a`)}" and "${key(`lokr_w${n}_b`)}"; the file is incomplete`,
      );
    }
    const t2 = n === 2 ? t["lokr_t2"] : undefined;
    if (t2) {
      rank(`lokr_w2_a`, 0, "lokr_t2", 0);
      rank(`lokr_w2_b`, 0, "lokr_t2", 1);
      return [a.shape[1]!, b.shape[1]! * numel(t2.shape.slice(2))];
    }
    rank(`lokr_w${n}_a`, 1, `lokr_w${n}_b`, 0);
    return [a.shape[0]!, numel(b.shape.slice(1))];
  };
  const [a, c] = dims(1), [b, dK] = dims(2);
  if (a * b !== W[0] || c * dK !== numel(W.slice(1))) {
    throw new LoraFileError(
      `LoKr factors of module "${module.path}" make a [${a * b}, ${c * dK}] delta, but its ` +
        `weight ${fmt(W)} is [${W[0]}, ${numel(W.slice(1))}] as a matrix; the file was made for ` +
        "a different model",
    );
  }
}
