// `mod.ts eval` end to end on a tiny random model the test writes (2 images, 2 steps): the JSON
// file holds every measure, a LoRA changes the generations but not the VAE or the real images,
// `--json -` prints the JSON to stdout; and bad input gives one error line with exit code 2
// (usage) or 1 (a missing model).
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import "./_helpers.ts"; // acquires the GPU device
import { randomData } from "./_helpers.ts";
import type { LoraEntry } from "../src/lora/file_types.ts";
import { writeLoraFile } from "../src/lora/formats/write_fs.ts";
import type { EvalReport } from "../src/cli/_eval_report.ts";
import { type CliRun, runCli, writeTinyModel } from "./_cli_fixtures.ts";

const Q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"; // [32, 32] in the tiny U-Net

function oneErrorLine(r: CliRun): string {
  ok(!/Uncaught|\n\s+at /.test(r.stderr), `stack trace printed:\n${r.stderr}`);
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  equal(errors.length, 1, r.stderr);
  return errors[0]!;
}

function checkFields(r: EvalReport, model: string): void {
  equal(r.model, model);
  deepEqual([r.n, r.seed, r.steps, r.cfg, r.sampler, r.side], [2, 99, 2, 5, "euler_a", 32]);
  for (const s of [r.generated, r.real, r.reconstructed]) {
    equal(s.n, 2);
    for (const k of ["colour", "background", "shape", "count", "fill"] as const) {
      ok(s[k] >= 0 && s[k] <= 1, `${k}: ${s[k]}`);
    }
  }
  // the real images are exact renders: the pixel measures read them right
  equal(r.real.colour, 1);
  equal(r.vae.n, 2);
  ok(Number.isFinite(r.vae.psnr) && r.vae.ssim <= 1, JSON.stringify(r.vae));
  ok(Number.isFinite(r.classifierFrechet) && r.classifierFrechet > 0, `${r.classifierFrechet}`);
  deepEqual(r.targets.map((t) => t.name), ["colour", "shape", "vaePsnr"]);
  for (const t of r.targets) equal(t.pass, t.value >= t.target);
  equal(r.targets[2]!.value, r.vae.psnr);
  ok(r.seconds > 0);
}

Deno.test("mod.ts eval on a tiny model writes every measure as JSON; a LoRA moves the generations", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denoise_eval_" });
  try {
    const model = `${dir}/model`;
    await writeTinyModel(model, 5);
    const base = ["eval", "--model", model, "--n", "2", "--steps", "2"];
    const plain = await runCli([...base, "--json", `${dir}/eval.json`]);
    equal(plain.code, 0, plain.stderr);
    for (const part of ["object colour", "shape", "VAE reconstruction PSNR", "stand-in for FID"]) {
      ok(plain.stdout.includes(part), `the table lacks ${part}:\n${plain.stdout}`);
    }
    ok(/>= 28\.00 dB\s+(pass|FAIL)/.test(plain.stdout), plain.stdout);
    ok(plain.stderr.includes("generated 2/2 images"), plain.stderr);
    const report = JSON.parse(await Deno.readTextFile(`${dir}/eval.json`)) as EvalReport;
    checkFields(report, model);
    deepEqual(report.loras, []);

    const entry: LoraEntry = {
      component: "unet",
      path: Q,
      kind: "lora",
      alpha: 4,
      tensors: {},
      down: { shape: [4, 32], data: Float32Array.from(randomData(4 * 32, 11)) },
      up: { shape: [32, 4], data: Float32Array.from(randomData(32 * 4, 12)) },
    };
    await writeLoraFile(`${dir}/a.safetensors`, [entry], {
      metadata: { networkDim: 4, networkAlpha: 4 },
    });
    const spec = `${dir}/a.safetensors:4`;
    const adapted = await runCli([...base, "--lora", spec, "--json", "-"]);
    equal(adapted.code, 0, adapted.stderr);
    const withLora = JSON.parse(adapted.stdout) as EvalReport; // stdout holds the JSON only
    ok(adapted.stderr.includes("VAE reconstruction PSNR"), "the table goes to stderr");
    checkFields(withLora, model);
    deepEqual(withLora.loras, [spec]);
    // the LoRA adapts the U-Net only: the real images and their reconstructions are unchanged
    deepEqual([withLora.real, withLora.vae, withLora.reconstructed], [
      report.real,
      report.vae,
      report.reconstructed,
    ]);
    notEqual(withLora.classifierFrechet, report.classifierFrechet);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mod.ts eval: bad numbers exit 2, a missing model exits 1, one error line each", async () => {
  for (
    const [flag, value, part] of [
      ["--n", "0", "--n must be a whole number from 2 to 4096"],
      ["--steps", "0", "--steps must be a whole number from 1 to 1000"],
      ["--cfg", "-1", "--cfg must be a decimal number from 0 to 100, such as 5;"],
    ] as const
  ) {
    const r = await runCli(["eval", `${flag}=${value}`]);
    equal(r.code, 2, `${flag} ${value}: ${r.stderr}`);
    ok(oneErrorLine(r).includes(part), r.stderr);
    ok(r.stderr.includes("mod.ts eval --help"), r.stderr);
  }
  // an ablation's usage errors point at the ablation's own help, which lists its options
  const ablationCases: [string[], string][] = [
    [["--bogus"], 'no option "--bogus"'],
    [["--steps", "0"], "--steps"],
  ];
  for (const [args, part] of ablationCases) {
    const r = await runCli(["eval", "--ablation", "blockwise", ...args]);
    equal(r.code, 2, r.stderr);
    ok(oneErrorLine(r).includes(part), r.stderr);
    ok(r.stderr.includes('Run "deno run -A mod.ts eval --ablation blockwise --help"'), r.stderr);
  }
  const missing = await runCli(["eval", "--model", "/nonexistent/mini_sd", "--n", "2"]);
  equal(missing.code, 1, missing.stderr);
  ok(oneErrorLine(missing).includes("/nonexistent/mini_sd"), missing.stderr);
  const dir = await Deno.makeTempDir({ prefix: "denoise_eval_" });
  try {
    // the JSON path is checked before any model is opened
    const noFolder = await runCli(["eval", "--model", "nowhere", "--json", `${dir}/no/e.json`]);
    equal(noFolder.code, 1, noFolder.stderr);
    ok(oneErrorLine(noFolder).includes("create the folder"), noFolder.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
