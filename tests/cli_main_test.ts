// The CLI entry: one error handler (usage errors exit 2 with the command's help hint, failures
// exit 1 with one line, --debug adds the stack), --version, strict decimal numbers, output paths
// checked before any model is loaded, atomic PNG / JPEG output chosen by the extension, escaped
// terminal output, and no Mesa XDG_RUNTIME_DIR warning.
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { parseSafetensors } from "../src/nn/safetensors.ts";
import { writeSafetensors } from "../src/nn/safetensors_fs.ts";
import { crc32 } from "../src/eval/_png_chunk.ts";
import "./_helpers.ts"; // acquires the GPU device
import { type CliRun, runCli as run, writeTinyModel } from "./_cli_fixtures.ts";

const VERSION = JSON.parse(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
).version;

function noStack(r: CliRun): void {
  ok(!/Uncaught|\n\s+at /.test(r.stderr), `stack trace printed:\n${r.stderr}`);
}

Deno.test("mod.ts --version prints the deno.json version", async () => {
  const r = await run(["--version"]);
  equal(r.code, 0, r.stderr);
  equal(r.stdout.trim(), `denoise ${VERSION}`);
});

Deno.test("unknown options and commands exit 2 with one line and a help hint", async () => {
  for (
    const [args, parts] of [
      [["--bogus"], ['Unknown option "--bogus"', "mod.ts --help"]],
      [["paint"], ['Unknown command "paint"', "info, sample", "train"]],
      [["sample", "--bogus"], ['sample has no option "--bogus"', "mod.ts sample --help"]],
      [["sample", "--model"], ['"--model" of sample needs a value', "mod.ts sample --help"]],
      [["sample", "--seed", "-1"], ["write --seed=<value>"]],
      [["info", "extra"], ['takes no word "extra"', "mod.ts info --help"]],
    ] as const
  ) {
    const r = await run([...args]);
    equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    noStack(r);
    for (const p of parts) ok(r.stderr.includes(p), `${args.join(" ")}: "${r.stderr}" lacks ${p}`);
  }
});

Deno.test("sample numbers are decimal only, in their stated ranges", async () => {
  const base = ["sample", "--model", "nowhere", "--prompt", "x"];
  for (
    const [flag, value, part] of [
      ["--cfg", "", 'got ""'],
      ["--cfg", "1e1", "decimal number from 0 to 100"],
      ["--cfg", "Infinity", "decimal number"],
      ["--steps", "1e1", "whole number from 1 to 1000"],
      ["--steps", "10.0", 'got "10.0"'],
      ["--steps", "0", "whole number from 1"],
      ["--seed", "0x10", "written in decimal digits"],
      ["--seed", "-1", "0 to 9007199254740991"],
      ["--width", "99999", "8 to 8192"],
      ["--sampler", "turbo\x1b[2J", "dpmpp_2m_karras"],
    ] as const
  ) {
    const r = await run([...base, `${flag}=${value}`]);
    equal(r.code, 2, `${flag} ${JSON.stringify(value)}: ${r.stderr}`);
    noStack(r);
    ok(r.stderr.includes(flag) && r.stderr.includes(part), `${flag}: "${r.stderr}" lacks ${part}`);
    ok(!r.stderr.includes("\x1b"), "a raw escape code reached the terminal");
  }
});

Deno.test("output paths are checked before the model is loaded", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denoise_cli_" });
  try {
    const base = ["sample", "--model", "nowhere", "--prompt", "x", "--out"];
    const gif = await run([...base, `${dir}/a.gif`]);
    equal(gif.code, 2, gif.stderr);
    ok(gif.stderr.includes(".png, .jpg or .jpeg"), gif.stderr);
    const folder = await run([...base, `${dir}/x.png`.replace("x.png", ".png")]);
    equal(folder.code, 1, folder.stderr); // "<dir>/.png" is a file name, but the model is missing
    await Deno.mkdir(`${dir}/d.png`);
    const isDir = await run([...base, `${dir}/d.png`]);
    equal(isDir.code, 1, isDir.stderr);
    ok(isDir.stderr.includes("is a folder"), isDir.stderr);
    const noDir = await run([...base, `${dir}/missing/a.png`]);
    equal(noDir.code, 1, noDir.stderr);
    ok(noDir.stderr.includes("create the folder"), noDir.stderr);
    for (const r of [gif, isDir, noDir]) ok(!r.stderr.includes("nowhere"), "the model was opened");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failure exits 1 with one line, --debug adds the stack, and the XDG warning is gone", async () => {
  const r = await run(["sample", "--model", "/nonexistent/model", "--prompt", "x"], {
    XDG_RUNTIME_DIR: "",
  });
  equal(r.code, 1, r.stderr);
  noStack(r);
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  equal(errors.length, 1, r.stderr);
  ok(errors[0]!.includes("/nonexistent/model"), r.stderr);
  ok(!r.stderr.includes("XDG_RUNTIME_DIR"), r.stderr);
  const d = await run(["sample", "--model", "/nonexistent/model", "--prompt", "x", "--debug"]);
  equal(d.code, 1);
  ok(/\n\s+at /.test(d.stderr), `no stack with --debug:\n${d.stderr}`);
});

/** Checks a PNG's signature, chunk CRCs and IHDR; returns width, height and the inflated data. */
async function readPng(bytes: Uint8Array): Promise<{ w: number; h: number; raw: Uint8Array }> {
  deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8, w = 0, h = 0;
  const idat: Uint8Array<ArrayBuffer>[] = [];
  for (;;) {
    const len = v.getUint32(at);
    const type = new TextDecoder().decode(bytes.subarray(at + 4, at + 8));
    equal(v.getUint32(at + 8 + len), crc32(bytes.subarray(at + 4, at + 8 + len)), `${type} CRC`);
    const data = bytes.subarray(at + 8, at + 8 + len);
    if (type === "IHDR") {
      w = v.getUint32(at + 8);
      h = v.getUint32(at + 12);
      deepEqual([...data.subarray(8)], [8, 2, 0, 0, 0]);
    }
    if (type === "IDAT") idat.push(data.slice());
    at += 12 + len;
    if (type === "IEND") break;
  }
  equal(at, bytes.byteLength, "bytes after IEND");
  const raw = new Uint8Array(
    await new Response(new Blob(idat).stream().pipeThrough(new DecompressionStream("deflate")))
      .arrayBuffer(),
  );
  return { w, h, raw };
}

Deno.test("sample writes a PNG for .png, replacing an existing file atomically", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denoise_cli_" });
  try {
    await writeTinyModel(`${dir}/model`, 9);
    const out = `${dir}/img.png`;
    const old = new TextEncoder().encode("precious old bytes");
    await Deno.writeFile(out, old);
    const args = ["sample", "--model", `${dir}/model`, "--prompt", "a cat", "--steps", "2"];
    const size = ["--width", "24", "--height", "16", "--out", out];
    // a failure after the checks (a bad VAE config) leaves the old file whole
    const vae = `${dir}/model/vae/config.json`;
    const good = await Deno.readTextFile(vae);
    await Deno.writeTextFile(vae, JSON.stringify({ ...JSON.parse(good), scaling_factor: 0 }));
    const bad = await run([...args, ...size]);
    equal(bad.code, 1, bad.stderr);
    ok(bad.stderr.includes("scaling_factor"), bad.stderr);
    deepEqual(await Deno.readFile(out), old);
    await Deno.writeTextFile(vae, good);
    // a second name for the old file: an in-place write would change it, a rename does not
    await Deno.link(out, `${dir}/old-link`);
    const r = await run([...args, ...size]);
    equal(r.code, 0, r.stderr);
    deepEqual(await Deno.readFile(`${dir}/old-link`), old, "the old file was overwritten in place");
    await Deno.remove(`${dir}/old-link`);
    const png = await readPng(await Deno.readFile(out));
    deepEqual([png.w, png.h], [24, 16]);
    equal(png.raw.byteLength, 16 * (1 + 3 * 24));
    notEqual(png.raw.subarray(1, 73).reduce((a, b) => a + b, 0), 0, "an all-black first row");
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    deepEqual(left, ["img.png", "model"], "a temporary file was left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a tensor name holding escape codes reaches the terminal escaped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denoise_cli_" });
  try {
    await writeTinyModel(`${dir}/model`, 9);
    const path = `${dir}/model/unet/diffusion_pytorch_model.safetensors`;
    const { tensors } = parseSafetensors(await Deno.readFile(path));
    const inputs = Object.fromEntries(
      Object.entries(tensors).map(([k, t]) => [k, { data: t.data, shape: t.shape }]),
    );
    const evil = "\x1b[2J\x1b[Hwrote out.png (512x512, seed 0)";
    await writeSafetensors(path, { ...inputs, [evil]: { data: new Float32Array(1), shape: [1] } });
    const r = await run(["sample", "--model", `${dir}/model`, "--prompt", "x"]);
    equal(r.code, 1, r.stderr);
    ok(
      !r.stderr.includes("\x1b"),
      `a raw escape reached the terminal: ${JSON.stringify(r.stderr)}`,
    );
    ok(r.stderr.includes("\\x1b[2J"), r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
