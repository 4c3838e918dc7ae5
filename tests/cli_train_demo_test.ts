// `mod.ts train` demo: the bundled run end to end with CI-sized flags, its help and its flags.
import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import jpeg from "jpeg-js";
import { getDevice } from "../src/ops/device.ts";
import { loadStableDiffusion } from "../src/nn/loaders_fs.ts";
import { readLoraFile } from "../src/lora/formats/read_fs.ts";
import { modelShapes } from "../src/lora/formats/model_shapes.ts";
import { runCli } from "./_cli_fixtures.ts";

const MINI_SD = new URL("../models/mini_sd", import.meta.url).pathname;

Deno.test("mod.ts train --demo-steps 2 --demo-images 2 writes every demo output and prints the effect", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await runCli([
      "train",
      "--demo-steps",
      "2",
      "--demo-images",
      "2",
      "--demo-sample-steps",
      "2",
      "--output_dir",
      dir,
    ]);
    equal(r.code, 0, r.stderr);
    // the printed effect: concept share base and LoRA, per-attribute accuracy, the mean change
    ok(
      /concept: \d+% of 2 prompts with "zqstar" show a star with the LoRA/.test(r.stdout),
      r.stdout,
    );
    ok(/base model \d+%/.test(r.stdout), r.stdout);
    ok(
      /denoising loss on these 2 unseen scenes .*: base \d\.\d{4} -> LoRA \d\.\d{4}/.test(r.stdout),
    );
    ok(/ceiling: .* passed through the VAE read as a star in \d+%/.test(r.stdout), r.stdout);
    ok(/colour \d+% -> \d+%, background \d+% -> \d+%, shape/.test(r.stdout), r.stdout);
    ok(/mean attribute accuracy \d+% -> \d+% \([+-]\d+\.\d points\)/.test(r.stdout), r.stdout);
    ok(r.stderr.includes("--pretrained_model_name_or_path models/mini_sd"), r.stderr);

    // four grids of 2 images (1 row, 2 columns) scaled x8: 512 x 256 baseline JPEGs
    for (const name of ["zqstar_base", "zqstar_lora", "plain_base", "plain_lora"]) {
      const path = join(dir, `${name}.jpg`);
      ok(r.stdout.includes(path), `${path} not printed`);
      const bytes = await Deno.readFile(path);
      equal([...bytes.subarray(0, 3)].join(), "255,216,255", `${name}: no JPEG header`);
      const img = jpeg.decode(bytes);
      equal(`${img.width}x${img.height}`, "512x256", name);
    }

    const svg = await Deno.readTextFile(join(dir, "logs", "loss_curve.svg"));
    ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"), svg.slice(0, 80));
    const html = await Deno.readTextFile(join(dir, "logs", "report.html"));
    ok(html.startsWith("<!doctype html>") && html.trimEnd().endsWith("</html>"));
    ok(html.includes("Demo: measured effect") && html.includes("mean attribute accuracy"));
    equal(html.split('src="data:image/jpeg;base64,').length - 1, 4, "four grids embedded");
    ok(html.indexOf("Demo: measured effect") < html.indexOf("<h2>Loss</h2>"));

    // the LoRA is a kohya file whose every entry maps onto the mini SD's modules
    const lora = join(dir, "zqstar.safetensors");
    ok(r.stdout.includes(lora));
    await getDevice();
    const models = await loadStableDiffusion(MINI_SD);
    try {
      const file = await readLoraFile(lora, modelShapes(models));
      equal(file.family, "kohya");
      ok(file.entries.some((e) => e.component === "unet"), "U-Net entries");
      ok(file.entries.some((e) => e.component === "text_encoder"), "text-encoder entries");
      equal(file.metadata["ss_network_dim"], "8");
    } finally {
      for (const m of [models.unet, models.vae, models.textEncoder]) m.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mod.ts train --help names the no-argument demo and the kohya invocation", async () => {
  const r = await runCli(["train", "--help"]);
  equal(r.code, 0, r.stderr);
  ok(r.stdout.includes("no arguments: the bundled demo"), r.stdout.slice(0, 300));
  for (const flag of ["--demo-steps", "--pretrained_model_name_or_path", "--train_data_dir"]) {
    ok(r.stdout.includes(flag), flag);
  }
});

Deno.test("mod.ts train demo flags are checked before anything runs (exit 2)", async () => {
  const r = await runCli(["train", "--demo-steps", "0"]);
  equal(r.code, 2, r.stderr);
  ok(r.stderr.includes("--demo-steps must be a whole number from 1"), r.stderr);
  const unknown = await runCli(["train", "--demo-images", "2", "--network_dim", "4"]);
  equal(unknown.code, 2, unknown.stderr);
  ok(unknown.stderr.includes("--network-dim"), unknown.stderr);
});
