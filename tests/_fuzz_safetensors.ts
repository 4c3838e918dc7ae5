// The safetensors fuzzer shared by tests/fuzz_safetensors_test.ts (a few seconds) and
// bench/fuzz_safetensors.ts (long runs): seeded mutations of a valid file's length field, header
// and body, fed through every public reading path, checked against the independent reference
// parser in _safetensors_reference.ts.
import {
  type ByteSource,
  parseSafetensors,
  readSafetensorsHeader,
  SafetensorsReader,
  serializeSafetensors,
} from "../src/nn/safetensors.ts";
import { SafetensorsFile } from "../src/nn/safetensors_fs.ts";
import { SafetensorsError } from "../src/nn/errors.ts";
import { referenceParse } from "./_safetensors_reference.ts";
import { seeded } from "./_helpers.ts";

/** What a fuzz run saw. */
export interface FuzzCounts {
  /** Mutated files tried. */
  cases: number;
  /** Files every path accepted (as the reference did). */
  accepted: number;
  /** Files every path rejected with a SafetensorsError (as the reference did). */
  rejected: number;
  /** Cases also read from a file on disk. */
  fileCases: number;
  /** Slowest case in milliseconds (all paths together). */
  slowestMs: number;
  /** Cases per mutation kind. */
  kinds: Record<string, number>;
  /** Failures: a path disagreeing with the reference, different data, or an untyped error. */
  failures: string[];
}

const BASE = serializeSafetensors(
  {
    "down.weight": { data: Float32Array.from({ length: 6 }, (_, i) => i - 2.5), shape: [2, 3] },
    "up.weight": { data: Float32Array.from([0.5, -1, 2, 65504]), shape: [4], dtype: "F16" },
    "alpha": { data: Float32Array.from([4]), shape: [] },
  },
  { ss_network_dim: "2", note: "fuzz" },
);
const HEADER_LEN = Number(new DataView(BASE.buffer).getBigUint64(0, true));
const CHARS = new TextEncoder().encode('{}[]",:0123456789.eE-+\\ \tnulltruefalse');
const SNIPPETS = [
  '"a":',
  "2.0",
  "1e0",
  "-1",
  "[[[[",
  "]]]]",
  '"dtype":"F32",',
  '"__metadata__":null,',
  '"__metadata__":{"x":1},',
  '"down.weight":{},',
  "\ufeff",
  "\\u0000",
  "\\ud800",
  "\x1b[2J",
  "99999999999999999999",
  "0",
  ",",
  "null",
]; // deno-fmt-ignore

function withLength(header: Uint8Array, body: Uint8Array, length = header.byteLength): Uint8Array {
  const out = new Uint8Array(8 + header.byteLength + body.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(length), true);
  out.set(header, 8);
  out.set(body, 8 + header.byteLength);
  return out;
}

/** One seeded mutation of the base file; returns its kind and bytes. */
function mutate(rand: () => number): [string, Uint8Array] {
  const r = () => (rand() + 1) / 2; // [0, 1)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  let header = BASE.slice(8, 8 + HEADER_LEN);
  let body = BASE.slice(8 + HEADER_LEN);
  const text = () => new TextDecoder().decode(header);
  const kind = pick([
    "flip",
    "byte",
    "insert",
    "delete",
    "snippet",
    "number",
    "body",
    "truncate",
    "append",
    "length",
    "stack",
  ]);
  const rounds = kind === "stack" ? 2 + Math.floor(r() * 4) : 1;
  let declared: number | bigint | undefined;
  let file: Uint8Array | undefined;
  for (let round = 0; round < rounds; round++) {
    const k = kind === "stack"
      ? pick(["flip", "byte", "insert", "delete", "snippet", "number"])
      : kind;
    const at = Math.floor(r() * header.byteLength);
    if (k === "flip") header[at]! ^= 1 << Math.floor(r() * 8);
    else if (k === "byte") header[at] = r() < 0.8 ? pick([...CHARS]) : Math.floor(r() * 256);
    else if (k === "insert" || k === "snippet") {
      const add = k === "insert"
        ? new Uint8Array([pick([...CHARS])])
        : new TextEncoder().encode(pick(SNIPPETS));
      const h = new Uint8Array(header.byteLength + add.byteLength);
      h.set(header.subarray(0, at));
      h.set(add, at);
      h.set(header.subarray(at), at + add.byteLength);
      header = h;
    } else if (k === "delete") {
      header = Uint8Array.from([...header.subarray(0, at), ...header.subarray(at + 1)]);
    } else if (k === "number") {
      // change one integer literal: an offset or a dimension moves, grows or turns to 2.0 / 1e0
      const t = text();
      const nums = [...t.matchAll(/[0-9]+/g)];
      const m = nums.length ? pick(nums) : undefined;
      if (m) {
        const v = Number(m[0]);
        const repl = pick([
          String(v + 1),
          String(Math.max(0, v - 1)),
          `${v}.0`,
          `${v}e0`,
          String(v * 2),
          "0",
          String(2 ** 53),
          `-${v}`,
        ]); // deno-fmt-ignore
        header = new TextEncoder().encode(
          t.slice(0, m.index) + repl + t.slice(m.index! + m[0].length),
        );
      }
    } else if (k === "body") {
      body[Math.floor(r() * body.byteLength)] = Math.floor(r() * 256);
    } else if (k === "truncate") {
      file = withLength(header, body).subarray(0, Math.floor(r() * (8 + header.byteLength + 40)));
    } else if (k === "append") {
      body = Uint8Array.from([
        ...body,
        ...Array.from({ length: 1 + Math.floor(r() * 8) }, () => 0),
      ]);
    } else if (k === "length") {
      declared = pick([
        header.byteLength - 1,
        header.byteLength + 1,
        0,
        7,
        2 ** 32,
        BigInt.asUintN(64, BigInt(Math.floor(r() * 2 ** 53)) << 11n),
      ]); // deno-fmt-ignore
    }
  }
  if (file) return [kind, file];
  const out = withLength(header, body);
  if (declared !== undefined) new DataView(out.buffer).setBigUint64(0, BigInt(declared), true);
  return [kind, out];
}

/** A ByteSource that hands out each read in small slices (a streaming source's behaviour). */
function chunkedSource(bytes: Uint8Array): ByteSource {
  return {
    name: "<chunked>",
    size: bytes.byteLength,
    read: (offset, length) => Promise.resolve(bytes.slice(offset, offset + length)),
  };
}

type Outcome = { ok: true; keys: string[]; raw: Map<string, Uint8Array>; meta: string } | {
  ok: false;
  error: unknown;
};

async function readAll(open: () => Promise<SafetensorsReader>): Promise<Outcome> {
  try {
    using r = await open();
    const raw = new Map<string, Uint8Array>();
    for (const k of r.keys) {
      raw.set(k, await r.readRaw(k));
      await r.read(k); // decoding must not throw either
    }
    return { ok: true, keys: [...r.keys].sort(), raw, meta: JSON.stringify(r.metadata) };
  } catch (error) {
    return { ok: false, error };
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

/** Runs `cases` seeded mutations; every `fileEvery`-th case also goes through a file on disk. */
export async function fuzzSafetensors(
  seed: number,
  cases: number,
  fileEvery = 25,
): Promise<FuzzCounts> {
  const rand = seeded(seed);
  const counts: FuzzCounts = {
    cases: 0,
    accepted: 0,
    rejected: 0,
    fileCases: 0,
    slowestMs: 0,
    kinds: {},
    failures: [],
  }; // deno-fmt-ignore
  const dir = await Deno.makeTempDir({ prefix: "denoise_fuzz_" });
  try {
    for (let i = 0; i < cases; i++) {
      const [kind, bytes] = mutate(rand);
      counts.kinds[kind] = (counts.kinds[kind] ?? 0) + 1;
      counts.cases++;
      const t0 = performance.now();
      const ref = referenceParse(bytes);
      const outcomes: [string, Outcome][] = [];
      try {
        const p = parseSafetensors(bytes);
        outcomes.push(["parseSafetensors", {
          ok: true,
          keys: Object.keys(p.tensors).sort(),
          raw: new Map(),
          meta: JSON.stringify(p.metadata),
        }]);
      } catch (error) {
        outcomes.push(["parseSafetensors", { ok: false, error }]);
      }
      outcomes.push(["fromBytes", await readAll(() => SafetensorsReader.fromBytes(bytes))]);
      outcomes.push([
        "fromSource",
        await readAll(() => SafetensorsReader.fromSource(chunkedSource(bytes))),
      ]);
      try {
        await readSafetensorsHeader(bytes.slice().buffer);
        outcomes.push(["readSafetensorsHeader", { ok: true, keys: [], raw: new Map(), meta: "" }]);
      } catch (error) {
        outcomes.push(["readSafetensorsHeader", { ok: false, error }]);
      }
      if (i % fileEvery === 0) {
        counts.fileCases++;
        const path = `${dir}/case.safetensors`;
        await Deno.writeFile(path, bytes);
        outcomes.push(["SafetensorsFile", await readAll(() => SafetensorsFile.open(path))]);
      }
      counts.slowestMs = Math.max(counts.slowestMs, performance.now() - t0);
      const refOk = typeof ref !== "string";
      const where = `case ${i} (${kind}, seed ${seed})`;
      for (const [path, o] of outcomes) {
        if (!o.ok && !(o.error instanceof SafetensorsError)) {
          counts.failures.push(`${where}: ${path} threw an untyped ${String(o.error)}`);
        } else if (o.ok !== refOk) {
          counts.failures.push(
            `${where}: ${path} ${o.ok ? "accepted" : "rejected"} a file the reference ${
              refOk ? "accepts" : `rejects (${ref})`
            }${o.ok ? "" : `: ${(o.error as Error).message}`}`,
          );
        } else if (o.ok && refOk) {
          const want = [...ref.tensors.keys()].sort();
          if (path !== "readSafetensorsHeader" && o.keys.join("\n") !== want.join("\n")) {
            counts.failures.push(`${where}: ${path} read other tensor names`);
          }
          for (const [k, b] of o.raw) {
            if (!sameBytes(b, ref.tensors.get(k)!.bytes)) {
              counts.failures.push(`${where}: ${path} read other bytes for a tensor`);
            }
          }
          if (o.meta && o.meta !== JSON.stringify(ref.metadata)) {
            counts.failures.push(`${where}: ${path} read other metadata`);
          }
        }
      }
      if (refOk) counts.accepted++;
      else counts.rejected++;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return counts;
}
