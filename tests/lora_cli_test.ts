// `mod.ts lora plan | info | merge` and `sample --lora` on a tiny random model the test writes:
// the merged checkpoint loads with our loaders and holds base + multiplier * delta, in the base's
// layout; bad input fails with a clear error and writes nothing.
import { deepEqual, equal, notDeepEqual, ok, rejects } from "node:assert/strict";
import {
  loadDiffusersFolder,
  loadSingleFile,
  saveDiffusersFolder,
  saveSingleFile,
} from "../src/nn/loaders_fs.ts";
import type { Linear } from "../src/nn/layers/linear.ts";
import type { LoraEntry } from "../src/lora/file_types.ts";
import { writeLoraFile } from "../src/lora/formats/write_fs.ts";
import { loraCommand } from "../src/cli/lora.ts";
import { OutputError } from "../src/cli/_output.ts";
import { UsageError } from "../src/cli/_args.ts";
import { assertClose, randomData } from "./_helpers.ts";
import { TINY_CLIP, TINY_TOKENIZER, TINY_UNET } from "./_sd_fixture.ts";
import { AutoencoderKL, CLIPTextModel, Generator, UNet2DConditionModel } from "../mod.ts";
import { runCli as run } from "./_cli_fixtures.ts";

const Q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"; // [32, 32], in0 / IN01
const FC1 = "text_model.encoder.layers.1.mlp.fc1"; // [64, 48]

function lora(
  path: string,
  component: LoraEntry["component"],
  out: number,
  inp: number,
): LoraEntry {
  return {
    component,
    path,
    kind: "lora",
    alpha: 2,
    tensors: {},
    down: { shape: [4, inp], data: Float32Array.from(randomData(4 * inp, out + inp)) },
    up: { shape: [out, 4], data: Float32Array.from(randomData(out * 4, out)) },
  };
}

function delta(e: LoraEntry): Float64Array {
  const [r, n] = e.down!.shape as [number, number], out = e.up!.shape[0]!;
  const d = new Float64Array(out * n);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < n; i++) {
      for (let q = 0; q < r; q++) {
        d[o * n + i]! += (e.alpha! / r) * e.up!.data[o * r + q]! * e.down!.data[q * n + i]!;
      }
    }
  }
  return d;
}

async function capture(fn: () => Promise<number>): Promise<[number, string]> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    return [await fn(), lines.join("\n")];
  } finally {
    console.log = log;
  }
}

async function setup(): Promise<{ dir: string; entries: LoraEntry[] }> {
  const dir = await Deno.makeTempDir();
  // 32 norm groups and 12 CLIP heads: a single file stores neither, so its loader assumes SD's.
  const g = new Generator(3);
  const m = {
    unet: new UNet2DConditionModel({ ...TINY_UNET, normNumGroups: 32, crossAttentionDim: 48 }, {
      generator: g,
    }),
    vae: new AutoencoderKL({ blockOutChannels: [32, 64], layersPerBlock: 1 }, { generator: g }),
    textEncoder: new CLIPTextModel({ ...TINY_CLIP, hiddenSize: 48, heads: 12 }, { generator: g }),
    tokenizerFiles: TINY_TOKENIZER,
  };
  await saveDiffusersFolder(`${dir}/base`, m);
  await saveSingleFile(`${dir}/base.safetensors`, m);
  [m.unet, m.vae, m.textEncoder].forEach((x) => x.dispose());
  const entries = [lora(Q, "unet", 32, 32), lora(FC1, "text_encoder", 64, 48)];
  await writeLoraFile(`${dir}/a.safetensors`, entries, {
    metadata: { networkDim: 4, networkAlpha: 2 },
  });
  return { dir, entries };
}

Deno.test("lora merge writes a single file and a diffusers folder holding base + m * delta", async () => {
  const { dir, entries } = await setup();
  try {
    const base = await loadSingleFile(`${dir}/base.safetensors`, { weightDType: "f32" });
    const w0 = await (base.unet.getChild(Q) as Linear).param("weight").value.toArray();
    const t0 = await (base.textEncoder.getChild(FC1) as Linear).param("weight").value.toArray();
    [base.unet, base.vae, base.textEncoder].forEach((x) => x.dispose());
    // multiplier 0.5, U-Net also times IN01's weight 0.25 (A1111 26-list), text encoder te=2
    const lbw = ["1", "0", "0.25", ...new Array(23).fill("1")].join(",");
    const [code] = await capture(() =>
      loraCommand([
        "merge",
        "--model",
        `${dir}/base.safetensors`,
        "--lora",
        `${dir}/a.safetensors:0.5:te=2:lbw=${lbw}`,
        "--out",
        `${dir}/merged.safetensors`,
        "--precision",
        "fp32",
      ])
    );
    equal(code, 0);
    const merged = await loadSingleFile(`${dir}/merged.safetensors`, { weightDType: "f32" });
    const w1 = await (merged.unet.getChild(Q) as Linear).param("weight").value.toArray();
    const t1 = await (merged.textEncoder.getChild(FC1) as Linear).param("weight").value.toArray();
    [merged.unet, merged.vae, merged.textEncoder].forEach((x) => x.dispose());
    // One f32 rounding of W + dW (|W| < 1, |dW| < 2): differences of 1e-6 at most.
    assertClose(
      w1.map((v, i) => v - w0[i]!),
      delta(entries[0]!).map((v) => 0.5 * 0.25 * v),
      1e-6,
      1e-5,
    );
    assertClose(t1.map((v, i) => v - t0[i]!), delta(entries[1]!).map((v) => 2 * 1 * v), 1e-6, 1e-5);

    const [code2] = await capture(() =>
      loraCommand([
        "merge",
        "--model",
        `${dir}/base`,
        "--lora",
        `${dir}/a.safetensors`,
        "--out",
        `${dir}/merged`,
      ])
    );
    equal(code2, 0);
    const folder = await loadDiffusersFolder(`${dir}/merged`, { weightDType: "f32" });
    const w2 = await (folder.unet.getChild(Q) as Linear).param("weight").value.toArray();
    ok(folder.tokenizer, "the tokenizer files come along");
    [folder.unet, folder.vae, folder.textEncoder].forEach((x) => x.dispose());
    // The diffusers base may hold f16 weights (loaded "auto"): compare at f16 precision.
    assertClose(w2.map((v, i) => v - w0[i]!), delta(entries[0]!), 2e-3, 1e-2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lora merge: an output in a missing folder, an existing folder or a bad spec writes nothing", async () => {
  const { dir } = await setup();
  try {
    const args = (out: string, spec = `${dir}/a.safetensors:0.8`) => [
      "merge",
      "--model",
      `${dir}/base.safetensors`,
      "--lora",
      spec,
      "--out",
      out,
    ];
    await rejects(
      loraCommand(args(`${dir}/nope/m.safetensors`)),
      (e: Error) =>
        e instanceof OutputError && e.message.includes("nope") &&
        /create the folder/.test(e.message),
    );
    await rejects(
      loraCommand([
        "merge",
        "--model",
        `${dir}/base`,
        "--lora",
        `${dir}/a.safetensors`,
        "--out",
        `${dir}/base`,
      ]),
      /already exists/,
    );
    await rejects(
      loraCommand(args(`${dir}/m.safetensors`, `${dir}/a.safetensors:abc`)),
      (e: Error) =>
        e instanceof UsageError && /the multiplier must be a decimal number/.test(e.message),
    );
    await rejects(
      loraCommand(args(`${dir}/m.safetensors`, `${dir}/a.safetensors:lbw=1,2,3`)),
      /have 3 values; give 17 or 26/,
    );
    await rejects(loraCommand(args(`${dir}/m.safetensors`, `${dir}/missing.safetensors`)));
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    deepEqual(left, ["a.safetensors", "base", "base.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lora plan prints kohya names and block counts; lora info describes a file", async () => {
  const { dir } = await setup();
  try {
    const [code, text] = await capture(() =>
      loraCommand(["plan", "--rank", "8", "--conv-rank", "4"])
    );
    equal(code, 0);
    ok(
      text.includes(
        "lora_unet_down_blocks_0_resnets_0_conv1  locon r=4 alpha=1  in0  [320, 320, 3, 3]",
      ),
      text.slice(0, 300),
    );
    ok(text.includes("350 modules (U-Net 278, text encoder 72)"), text.slice(-300));
    const [c2, tiny] = await capture(() =>
      loraCommand(["plan", "--model", `${dir}/base`, "--preset", "upper"])
    );
    equal(c2, 0);
    ok(/per block: in0 \d+, out1 \d+, te 12$/.test(tiny), tiny.slice(-200));
    await rejects(loraCommand(["plan", "--block-dims", "1,2,3"]), /blockDims has 3 entries/);
    await rejects(loraCommand(["plan", "--blocks", "in9=2"]), /Unknown block "in9"/);
    await rejects(loraCommand(["plan", "--rank=-1"]), /--rank must be a whole number/);
    const [c3, info] = await capture(() =>
      loraCommand(["info", `${dir}/a.safetensors`, "--model", `${dir}/base`])
    );
    equal(c3, 0);
    for (
      const want of [
        "family: kohya",
        "architecture: SD 1.x",
        "U-Net 1, text encoder 1",
        "ranks: 4 (2)",
        "alphas: 2 (2)",
        "ss_network_dim: 4",
      ]
    ) {
      ok(info.includes(want), `${want} in\n${info}`);
    }
    await rejects(loraCommand(["info", `${dir}/a.safetensors`]), /not|match|shape/i); // SD 1.5 layout: wrong shapes
    await rejects(loraCommand(["nothing"]), /lora has no subcommand "nothing"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mod.ts sample --lora changes the image, and multiplier 0 gives the base's bytes", async () => {
  const { dir } = await setup();
  try {
    const args = (out: string, ...extra: string[]) => [
      "sample",
      "--model",
      `${dir}/base`,
      "--prompt",
      "a photo of a cat",
      "--steps",
      "2",
      "--seed",
      "3",
      "--width",
      "16",
      "--height",
      "16",
      "--out",
      `${dir}/${out}`,
      ...extra,
    ];
    for (
      const [out, extra] of [
        ["plain.png", []],
        ["zero.png", ["--lora", `${dir}/a.safetensors:0`]],
        ["copy.png", ["--lora", `${dir}/a.safetensors:3`, "--lora-mode", "copy"]],
        ["lora.png", [
          "--lora",
          `${dir}/a.safetensors:3`,
          "--lora",
          `${dir}/a.safetensors:1:lbw=OUTD`,
        ]],
      ] as const
    ) {
      const r = await run(args(out, ...extra));
      equal(r.code, 0, r.stderr);
    }
    const read = (f: string) => Deno.readFile(`${dir}/${f}`);
    deepEqual(await read("zero.png"), await read("plain.png"));
    notDeepEqual(await read("lora.png"), await read("plain.png"));
    notDeepEqual(await read("copy.png"), await read("plain.png"));
    const bad = await run(args("x.png", "--lora", `${dir}/a.safetensors:lbw=NOPE`));
    equal(bad.code, 2, bad.stderr);
    ok(bad.stderr.includes("NOPE"), bad.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
