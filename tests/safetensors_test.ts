// safetensors: round trips through files and bytes, hand-written BF16 / F64 / integer files,
// every malformed-header case, and atomic writes that never damage an existing file.
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import {
  loadTensor,
  parseSafetensors,
  readSafetensorsHeader,
  SafetensorsError,
  SafetensorsReader,
  serializeSafetensors,
  toSafetensorsInputs,
} from "../src/nn/mod.ts";
import { SafetensorsFile, writeSafetensors } from "../src/nn/mod_fs.ts";
import { deviceInfo, getDevice } from "../src/ops/device.ts";
import { tensor } from "../src/ops/creation.ts";

/** A safetensors buffer from a header (object, JSON text or raw bytes) and a data section. */
function raw(
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  declaredLength?: bigint,
): Uint8Array {
  const json = header instanceof Uint8Array
    ? header
    : new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

function bytesOf(a: Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array) {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Checks the error is a SafetensorsError with a well-formed message containing `parts`. */
function isBad(...parts: string[]): (e: unknown) => boolean {
  return (e: unknown) => {
    ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    ok(/^[A-Z]/.test(e.message), `message not sentence case: ${e.message}`);
    ok(!e.message.endsWith("."), `message ends with a period: ${e.message}`);
    for (const p of parts) ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denoise_st_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("writeSafetensors() and SafetensorsFile round-trip F32 tensors and metadata", () =>
  withDir(async (dir) => {
    const path = `${dir}/model.safetensors`;
    const w = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i) * 1e3 + 1 / 3);
    const meta = { ss_network_dim: "4", note: "ünïcode ✓", empty: "" };
    await writeSafetensors(path, {
      "down_blocks.0.resnets.0.conv1.weight": { data: w, shape: [2, 3, 2, 2] },
      "scalar": { data: new Float32Array([-7.25]), shape: [] },
      "empty": { data: new Float32Array(0), shape: [0, 3] },
    }, meta);
    using f = await SafetensorsFile.open(path);
    deepEqual([...f.keys], ["down_blocks.0.resnets.0.conv1.weight", "scalar", "empty"]);
    deepEqual(f.metadata, meta);
    deepEqual(f.info("down_blocks.0.resnets.0.conv1.weight"), {
      dtype: "F32",
      shape: [2, 3, 2, 2],
    });
    deepEqual(f.info("scalar"), { dtype: "F32", shape: [] });
    deepEqual(await f.read("down_blocks.0.resnets.0.conv1.weight"), w);
    deepEqual(await f.read("scalar"), new Float32Array([-7.25]));
    deepEqual(await f.read("empty"), new Float32Array(0));
    ok(f.has("scalar") && !f.has("nope"));
    // the header is space-padded to a multiple of 8 bytes, as the reference writer does
    equal(f.header.headerLength % 8, 0);
    equal((await Deno.stat(path)).size, 8 + f.header.headerLength + 25 * 4);
    deepEqual(await listDir(dir), ["model.safetensors"]);
  }));

Deno.test("writeSafetensors() round-trips F16 from f32 and f16 data, F32 tensors first", () =>
  withDir(async (dir) => {
    const path = `${dir}/lora.safetensors`;
    const exact = new Float32Array([0, -0, 1, -2.5, 65504, 2 ** -24, 0.099975586]);
    const inexact = new Float32Array([0.1, 1 / 3, 1e5, 1e-9]);
    const half = Float16Array.from([0.5, -1.25, 3]);
    await writeSafetensors(path, {
      "a.f16": { data: exact, shape: [7], dtype: "F16" },
      "b.f16": { data: inexact, shape: [2, 2], dtype: "F16" },
      "c.f16": { data: half, shape: [3] },
      "d.f32": { data: new Float32Array([1.5, 2.5]), shape: [2] },
      "e.f32": { data: half, shape: [3], dtype: "F32" },
    }, { format: "pt" });
    using f = await SafetensorsFile.open(path);
    equal(f.info("a.f16").dtype, "F16");
    equal(f.info("c.f16").dtype, "F16");
    equal(f.info("e.f32").dtype, "F32");
    deepEqual(await f.read("a.f16"), exact);
    deepEqual(await f.read("b.f16"), Float32Array.from(inexact, Math.f16round));
    deepEqual(await f.read("c.f16"), new Float32Array([0.5, -1.25, 3]));
    deepEqual(await f.read("d.f32"), new Float32Array([1.5, 2.5]));
    deepEqual(await f.read("e.f32"), new Float32Array([0.5, -1.25, 3]));
    deepEqual(f.metadata, { format: "pt" });
    // F32 data is laid out before F16 data, so every tensor is aligned to its element size
    const offsets = (k: string) => f.header.tensors.get(k)!.dataOffsets;
    deepEqual(offsets("d.f32"), [0, 8]);
    deepEqual(offsets("e.f32"), [8, 20]);
    deepEqual(offsets("a.f16"), [20, 34]);
    equal(f.header.dataStart % 8, 0);
  }));

Deno.test("SafetensorsReader reads a hand-written BF16 file exactly", async () => {
  // bf16 is the top half of an f32: 1 = 0x3f80, -2 = 0xc000, 0.5 = 0x3f00, 3.140625 = 0x4049,
  // 2^-133 (subnormal) = 0x0001, -inf = 0xff80
  const bits = new Uint16Array([0x3f80, 0xc000, 0x3f00, 0x4049, 0x0001, 0xff80]);
  const bytes = raw(
    { "w": { dtype: "BF16", shape: [2, 3], data_offsets: [0, 12] }, "__metadata__": { a: "b" } },
    bytesOf(bits),
  );
  const want = new Float32Array([1, -2, 0.5, 3.140625, 2 ** -133, -Infinity]);
  using r = await SafetensorsReader.fromBytes(bytes, "bf16.safetensors");
  deepEqual(r.info("w"), { dtype: "BF16", shape: [2, 3] });
  deepEqual(await r.read("w"), want);
  deepEqual(parseSafetensors(bytes).tensors.w?.data, want);
  deepEqual(r.metadata, { a: "b" });
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/bf16.safetensors`, bytes);
    using f = await SafetensorsFile.open(`${dir}/bf16.safetensors`);
    deepEqual(await f.read("w"), want);
  });
});

Deno.test("SafetensorsReader widens F64, I64 and I32 tensors at unaligned offsets", async () => {
  const f64 = new Float64Array([0.1, -3]);
  const i64 = new BigInt64Array([-5n, 1n << 40n]);
  const i32 = new Int32Array([7, -8, 9]);
  const data = new Uint8Array(1 + 16 + 16 + 12);
  data.set(bytesOf(f64), 1);
  data.set(bytesOf(i64), 17);
  data.set(bytesOf(i32), 33);
  const bytes = raw({
    pad: { dtype: "U8", shape: [1], data_offsets: [0, 1] },
    f64: { dtype: "F64", shape: [2], data_offsets: [1, 17] },
    i64: { dtype: "I64", shape: [2], data_offsets: [17, 33] },
    i32: { dtype: "I32", shape: [3], data_offsets: [33, 45] },
  }, data);
  using r = await SafetensorsReader.fromBytes(bytes);
  deepEqual(await r.read("f64"), new Float32Array([0.1, -3]));
  deepEqual(await r.read("i64"), new Float32Array([-5, 2 ** 40]));
  deepEqual(await r.read("i32"), new Float32Array([7, -8, 9]));
  deepEqual(await r.readRaw("i32"), bytesOf(i32));
});

Deno.test("serializeSafetensors() and parseSafetensors() round-trip bytes (browser)", async () => {
  const bytes = serializeSafetensors({
    "x": { data: new Float32Array([1, 2, 3, 4, 5, 6]), shape: [3, 2] },
    "y": { data: new Float32Array([0.25]), shape: [1, 1], dtype: "F16" },
  }, { ss_output_name: "test" });
  const { metadata, tensors } = parseSafetensors(bytes);
  deepEqual(metadata, { ss_output_name: "test" });
  deepEqual(Object.keys(tensors), ["x", "y"]);
  deepEqual(tensors.x, { dtype: "F32", shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) });
  deepEqual(tensors.y, { dtype: "F16", shape: [1, 1], data: new Float32Array([0.25]) });
  const header = await readSafetensorsHeader(bytes);
  deepEqual(header.tensors.get("x"), { dtype: "F32", shape: [3, 2], dataOffsets: [0, 24] });
  equal(header.dataStart + header.dataLength, bytes.byteLength);
  // no metadata: no __metadata__ entry
  const plain = serializeSafetensors({ z: { data: new Float32Array(1), shape: [1] } });
  ok(!new TextDecoder().decode(plain).includes("__metadata__"));
  deepEqual(parseSafetensors(plain).metadata, {});
});

Deno.test("SafetensorsFile serves concurrent reads correctly", () =>
  withDir(async (dir) => {
    const path = `${dir}/many.safetensors`;
    const tensors = Object.fromEntries(
      Array.from({ length: 12 }, (_, i) => [`t${i}`, {
        data: Float32Array.from({ length: 100 + i }, (_, j) => i * 1000 + j),
        shape: [100 + i],
      }]),
    );
    await writeSafetensors(path, tensors);
    using f = await SafetensorsFile.open(path);
    const got = await Promise.all(f.keys.map((k) => f.read(k)));
    got.forEach((g, i) => deepEqual(g, tensors[`t${i}`]!.data));
  }));

// ------------------------------------------------------------------------------------------
// Malformed files: each case fails with SafetensorsError naming the file and the problem.

const good = { w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
const eight = new Uint8Array(8);
const badCases: [string, Uint8Array, string[]][] = [
  ["an empty file", new Uint8Array(0), ["0 bytes", "too short"]],
  ["a 5-byte file", new Uint8Array(5), ["5 bytes", "too short"]],
  ["a header length past the end", raw(good, eight, 1000n), ["1000-byte header", "truncated"]],
  ["an absurd header length", raw(good, eight, 1n << 40n), ["over the", "limit"]],
  ["a header length of 2^64 - 1", raw(good, eight, (1n << 64n) - 1n), ["limit"]],
  ["a file cut off in the data section", raw(good, new Uint8Array(5)), ['"w"', "past the end"]],
  ["invalid JSON", raw('{"w": {"dtype": "F32", ', eight), ["not valid JSON"]],
  ["a non-UTF-8 header", raw(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), eight), ["UTF-8"]],
  ["a header that is an array", raw("[1, 2]", eight), [
    'must be a JSON object starting with "{"',
    'starts with "[1, 2]"',
  ]],
  ["an entry that is not an object", raw({ w: [1, 2] }, eight), ['"w"', "array"]],
  [
    "an unknown dtype",
    raw({ w: { dtype: "F31", shape: [2], data_offsets: [0, 8] } }, eight),
    ['"w"', 'unknown dtype "F31"'],
  ],
  [
    "a missing dtype",
    raw({ w: { shape: [2], data_offsets: [0, 8] } }, eight),
    ['"w"', "unknown dtype"],
  ],
  [
    "a negative dimension",
    raw({ w: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, eight),
    ['"w"', "shape [-2]"],
  ],
  [
    "a fractional dimension",
    raw({ w: { dtype: "F32", shape: [1.5, 2], data_offsets: [0, 8] } }, eight),
    ['"w"', "shape [1.5, 2]"],
  ],
  [
    "a shape that is not an array",
    raw({ w: { dtype: "F32", shape: "2", data_offsets: [0, 8] } }, eight),
    ['"w"', 'shape "2"'],
  ],
  [
    "data_offsets with three numbers",
    raw({ w: { dtype: "F32", shape: [2], data_offsets: [0, 4, 8] } }, eight),
    ['"w"', "data_offsets [0, 4, 8]"],
  ],
  [
    "data_offsets with begin after end",
    raw({ w: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, eight),
    ['"w"', "begin <= end"],
  ],
  [
    "a shape and dtype that do not fit the byte range",
    raw({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, eight),
    ['"w"', "needs 12 bytes", "span 8"],
  ],
  [
    "an F16 shape that does not fit the byte range",
    raw({ w: { dtype: "F16", shape: [2], data_offsets: [0, 8] } }, eight),
    ['"w"', "needs 4 bytes"],
  ],
  [
    "out-of-range offsets",
    raw({ w: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, eight),
    ['"w"', "[4, 12]", "8-byte data section"],
  ],
  [
    "overlapping offsets",
    raw({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
    }, eight),
    ['"a"', '"b"', "overlap"],
  ],
  [
    "non-string metadata",
    raw({ "__metadata__": { steps: 100 }, ...good }, eight),
    ["__metadata__", '"steps"', "strings"],
  ],
];

for (const [what, bytes, parts] of badCases) {
  Deno.test(`SafetensorsFile.open() rejects ${what} with a clear SafetensorsError`, () =>
    withDir(async (dir) => {
      const path = `${dir}/bad.safetensors`;
      await Deno.writeFile(path, bytes);
      await rejects(SafetensorsFile.open(path), isBad(path, ...parts));
      throws(() => parseSafetensors(bytes, "mem.safetensors"), isBad("mem.safetensors", ...parts));
    }));
}

Deno.test("SafetensorsFile names a missing tensor and lists some it has", () =>
  withDir(async (dir) => {
    const path = `${dir}/m.safetensors`;
    await writeSafetensors(path, {
      "a": { data: new Float32Array(1), shape: [1] },
      "b": { data: new Float32Array(1), shape: [1] },
    });
    using f = await SafetensorsFile.open(path);
    await rejects(f.read("conv_in.weight"), isBad(path, 'no tensor "conv_in.weight"', '"a"'));
    throws(() => f.info("conv_in.weight"), isBad(path, "conv_in.weight"));
    f.close();
    await rejects(f.read("a"), isBad(path, "closed"));
  }));

Deno.test("SafetensorsReader explains a dtype it cannot widen", async () => {
  const bytes = raw(
    { q: { dtype: "F8_E4M3", shape: [4], data_offsets: [0, 4] } },
    new Uint8Array(4),
  );
  using r = await SafetensorsReader.fromBytes(bytes, "fp8.safetensors");
  equal(r.info("q").dtype, "F8_E4M3");
  await rejects(r.read("q"), isBad("fp8.safetensors", '"q"', "F8_E4M3", "convert"));
});

Deno.test("SafetensorsFile.open() reports a missing file as a SafetensorsError", async () => {
  await rejects(SafetensorsFile.open("/nonexistent/x.safetensors"), isBad("/nonexistent/x"));
});

// ------------------------------------------------------------------------------------------
// Atomic writes

Deno.test("a failed writeSafetensors() leaves an existing file intact and no temp file", () =>
  withDir(async (dir) => {
    const path = `${dir}/keep.safetensors`;
    await writeSafetensors(path, { w: { data: new Float32Array([1, 2]), shape: [2] } }, { v: "1" });
    const before = await Deno.readFile(path);
    const failures: [string, () => Promise<void>, string[]][] = [
      ["data/shape mismatch", () =>
        writeSafetensors(path, {
          ok: { data: new Float32Array(4), shape: [4] },
          w: { data: new Float32Array(5), shape: [2, 3] },
        }), ['"w"', "5 values", "[2, 3] holds 6"]],
      [
        "negative shape",
        () => writeSafetensors(path, { w: { data: new Float32Array(0), shape: [-1] } }),
        ['"w"'],
      ],
      [
        "reserved name",
        () => writeSafetensors(path, { __metadata__: { data: new Float32Array(1), shape: [1] } }),
        [
          "reserved",
        ],
      ],
      ["non-string metadata", () =>
        writeSafetensors(
          path,
          { w: { data: new Float32Array(1), shape: [1] } },
          { steps: 5 as unknown as string },
        ), ['"steps"', "strings"]],
      ["unsupported dtype", () =>
        writeSafetensors(path, {
          w: { data: new Float32Array(1), shape: [1], dtype: "BF16" as "F16" },
        }), ["BF16"]],
      ["non-float data", () =>
        writeSafetensors(path, {
          w: { data: new Int32Array(1) as unknown as Float32Array, shape: [1] },
        }), ["Float32Array"]],
    ];
    for (const [what, fn, parts] of failures) {
      await rejects(fn(), isBad(path, ...parts), what);
      deepEqual(await Deno.readFile(path), before, `${what} changed the file`);
      deepEqual(await listDir(dir), ["keep.safetensors"], `${what} left files behind`);
    }
    // a successful write replaces the file
    await writeSafetensors(path, { w: { data: new Float32Array([3]), shape: [1] } });
    using f = await SafetensorsFile.open(path);
    deepEqual(await f.read("w"), new Float32Array([3]));
    deepEqual(f.metadata, {});
    deepEqual(await listDir(dir), ["keep.safetensors"]);
  }));

Deno.test("writeSafetensors() cleans up its temp file when the final rename fails", () =>
  withDir(async (dir) => {
    // the target is a non-empty folder, so the rename after a complete write fails
    await Deno.mkdir(`${dir}/target`);
    await Deno.writeTextFile(`${dir}/target/inside.txt`, "keep");
    await rejects(
      writeSafetensors(`${dir}/target`, { w: { data: new Float32Array(64), shape: [8, 8] } }),
      isBad(`${dir}/target`, "nothing was changed"),
    );
    deepEqual(await listDir(dir), ["target"]);
    equal(await Deno.readTextFile(`${dir}/target/inside.txt`), "keep");
  }));

Deno.test("writeSafetensors() into a missing folder fails cleanly", async () => {
  const path = "/nonexistent_denoise_dir/x.safetensors";
  await rejects(
    writeSafetensors(path, { w: { data: new Float32Array(1), shape: [1] } }),
    isBad(path, "nothing was changed"),
  );
});

// ------------------------------------------------------------------------------------------
// GPU tensors

Deno.test("loadTensor() and toSafetensorsInputs() move tensors to and from the GPU", async () => {
  await getDevice();
  const bytes = serializeSafetensors({
    w: { data: new Float32Array([1, -2, 3.5, 0.1]), shape: [2, 2] },
    h: { data: new Float32Array([0.5, 0.1]), shape: [2], dtype: "F16" },
  });
  using r = await SafetensorsReader.fromBytes(bytes);
  using w = await loadTensor(r, "w", { requiresGrad: true });
  deepEqual(w.shape, [2, 2]);
  equal(w.dtype, "f32");
  ok(w.requiresGrad);
  deepEqual(await w.toArray(), new Float32Array([1, -2, 3.5, 0.1]));
  using h = await loadTensor(r, "h");
  deepEqual(await h.toArray(), new Float32Array([0.5, Math.f16round(0.1)]));
  const inputs = await toSafetensorsInputs(new Map([["w", w], ["h", h]]));
  deepEqual(parseSafetensors(serializeSafetensors(inputs)).tensors.w?.data, await w.toArray());
  if (deviceInfo().f16) {
    using h16 = await loadTensor(r, "h", { dtype: "f16" });
    equal(h16.dtype, "f16");
    deepEqual(await h16.toArray(), new Float32Array([0.5, Math.f16round(0.1)]));
    const back = await toSafetensorsInputs({ h16 });
    equal(back.h16?.dtype, "F16");
  }
  using t = tensor([1, 2, 3], [3]);
  deepEqual((await toSafetensorsInputs({ t }, { dtype: "F16" })).t?.dtype, "F16");
});
