// `mod.ts train` through the CLI on a tiny model folder the test writes: kohya's flag spellings
// train a LoRA that `mod.ts sample --lora` then applies; --help is grouped by topic; bad input
// (unknown or unsupported flag, TOML syntax error, unwritable output, a resolution the model
// cannot take) is a clear error naming the culprit, with nothing written.
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { normalizeTrainArgs } from "../src/cli/train_options.ts";
import { trainOptions } from "../src/cli/train.ts";
import { parseOptions, UsageError } from "../src/cli/_args.ts";
import { TRAIN_OPTIONS } from "../src/cli/train_options.ts";
import { throwsWith } from "./_train_helpers.ts";
import "./_helpers.ts"; // acquires the GPU device
import { runCli as run, writeTinyModel } from "./_cli_fixtures.ts";

async function fixture(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "cli_train_" });
  await writeTinyModel(join(root, "model"), 5);
  const dir = join(root, "train", "3_cat");
  await Deno.mkdir(dir, { recursive: true });
  for (const [i, [w, h]] of [[24, 16], [16, 24]].entries()) {
    const px = new Uint8Array(w! * h! * 3).map((_, k) => (k * 37 + i * 91) % 256);
    await sharp(px, { raw: { width: w!, height: h!, channels: 3 } }).png().toFile(
      join(dir, `${i}.png`),
    );
    await Deno.writeTextFile(join(dir, `${i}.txt`), "a photo of cat");
  }
  return root;
}

const names = async (dir: string) =>
  (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();

Deno.test("mod.ts train --help groups the options by topic", async () => {
  const r = await run(["train", "--help"]);
  equal(r.code, 0, r.stderr);
  const titles = [
    "Model and output:",
    "Data:",
    "Network:",
    "Optimizer and schedule:",
    "Noise and loss:",
    "Memory and precision:",
    "Saving and resuming:",
    "Logs and samples:",
  ];
  const at = titles.map((t) => r.stdout.indexOf(`\n${t}\n`));
  ok(at.every((i) => i > 0), `missing a group title:\n${r.stdout}`);
  deepEqual([...at].sort((a, b) => a - b), at, "groups in topic order");
  // each flag sits under its own group
  const under = (flag: string, title: string) => {
    const i = r.stdout.indexOf(`--${flag} `), g = r.stdout.indexOf(`\n${title}\n`);
    const next = at.filter((x) => x > g).sort((a, b) => a - b).find((x) => x > g + 1) ?? Infinity;
    ok(i > g && i < next, `--${flag} should be under ${title}`);
  };
  under("network-dim", "Network:");
  under("text-encoder-lr", "Optimizer and schedule:");
  under("min-snr-gamma", "Noise and loss:");
  under("save-state", "Saving and resuming:");
  under("sample-prompts", "Logs and samples:");
});

Deno.test("kohya spellings: underscores, --logging_dir, nargs network_args, unsupported flags", () => {
  deepEqual(
    normalizeTrainArgs([
      "--network_dim",
      "8",
      "--logging_dir=logs",
      "--network_args",
      "conv_dim=4",
      "down_lr_weight=sine",
      "--seed",
      "1",
    ]),
    [
      "--network-dim",
      "8",
      "--log-dir=logs",
      "--network-args",
      "conv_dim=4",
      "--network-args",
      "down_lr_weight=sine",
      "--seed",
      "1",
    ],
  );
  throwsWith(
    () => normalizeTrainArgs(["--full_fp16"]),
    UsageError,
    '"--full-fp16" is not supported',
  );
  const base = [
    "--pretrained-model-name-or-path",
    "m",
    "--train-data-dir",
    "d",
    "--output-dir",
    "o",
  ];
  const parse = (extra: string[]) =>
    trainOptions(parseOptions(normalizeTrainArgs([...base, ...extra]), TRAIN_OPTIONS, "train"));
  const o = parse([
    "--learning_rate",
    "1e-4",
    "--text_encoder_lr",
    "5e-5",
    "--network_args",
    "loraplus_lr_ratio=16",
    "mid_lr_weight=0.5",
    "rank_dropout=0.1",
    "--resolution",
    "512,768",
    "--clip_skip",
    "2",
  ]);
  equal(o.learningRate, 1e-4);
  equal(o.textEncoderLr, 5e-5);
  equal(o.loraplusLrRatio, 16);
  equal(o.midLrWeight, 0.5);
  equal(o.rankDropout, 0.1);
  deepEqual(o.resolution, [512, 768]);
  equal(o.clipSkip, 2);
  throwsWith(() => parse(["--network_args", "bogus=1"]), UsageError, 'no key "bogus"');
  equal(parse(["--network_args", "train_norm=True"]).trainNorm, true);
  equal(parse(["--network_args", "train_norm=false"]).trainNorm, false);
  throwsWith(() => parse(["--network_args", "train_norm=yes"]), UsageError, "True or False");
  throwsWith(() => parse(["--learning_rate", "fast"]), UsageError, "--learning-rate must be");
  throwsWith(() => parse(["--network_module", "lycoris.kohya"]), UsageError, "networks.lora");
  // kohya's save_last_n_steps counts steps: with saves every 10, the last 20 steps are 3 files
  const keep = parse([
    "--save_every_n_steps",
    "10",
    "--save_last_n_steps",
    "20",
    "--save_last_n_epochs",
    "2",
  ]);
  equal(keep.saveLastNStepFiles, 3);
  equal(keep.saveLastNEpochFiles, 2);
});

Deno.test("mod.ts train (kohya flags) writes a LoRA that mod.ts sample --lora applies", async () => {
  const root = await fixture();
  try {
    const out = join(root, "out");
    const r = await run([
      "train",
      "--pretrained_model_name_or_path",
      join(root, "model"),
      "--train_data_dir",
      join(root, "train"),
      "--output_dir",
      out,
      "--output_name",
      "cat",
      "--caption_extension",
      ".txt",
      "--resolution",
      "16",
      "--enable_bucket",
      "--min_bucket_reso",
      "8",
      "--max_bucket_reso",
      "32",
      "--bucket_reso_steps",
      "8",
      "--network_dim",
      "4",
      "--max_train_steps",
      "20",
      "--learning_rate",
      "1e-3",
      "--text_encoder_lr",
      "5e-4",
      "--cache_latents",
      "--gradient_checkpointing",
      "--save_every_n_steps",
      "5",
      "--save_last_n_steps",
      "5",
      "--weight-dtype",
      "f32",
      "--seed",
      "3",
    ]);
    equal(r.code, 0, r.stderr);
    ok(r.stdout.includes("cat.safetensors (20 steps)"), r.stdout);
    ok(r.stderr.includes("20/20"), r.stderr); // the last progress line
    // saves at steps 5, 10, 15 (20 is the final file); kohya's save_last_n_steps 5 at step 15
    // removes the file of step 5 and keeps those of steps 10 and 15
    deepEqual(await names(out), [
      "cat-step00000010.safetensors",
      "cat-step00000015.safetensors",
      "cat.safetensors",
    ]);
    const png = join(root, "s.png");
    const s = await run([
      "sample",
      "--model",
      join(root, "model"),
      "--prompt",
      "a photo of cat",
      "--lora",
      join(out, "cat.safetensors"),
      "--width",
      "16",
      "--height",
      "16",
      "--steps",
      "2",
      "--out",
      png,
    ]);
    equal(s.code, 0, s.stderr);
    const meta = await sharp(png).metadata();
    deepEqual([meta.width, meta.height], [16, 16]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("mod.ts train: bad input is one clear error naming it, and nothing is written", async () => {
  const root = await fixture();
  try {
    await Deno.writeTextFile(join(root, "file"), "x");
    await Deno.writeTextFile(join(root, "bad.toml"), "network_dim = 4\nlearning_rate = = 1\n");
    await Deno.writeTextFile(join(root, "unknown.toml"), "[net]\nnetwork_dim = 4\nwings = 2\n");
    // data folders with one fault each: a truncated PNG, a caption in Latin-1, an empty folder,
    // and a folder without the <repeats>_ prefix (skipped with a warning, then nothing is left)
    const png = await Deno.readFile(join(root, "train", "3_cat", "0.png"));
    const bad = (name: string) => join(root, "bad", name);
    await Deno.mkdir(join(bad("cut"), "1_x"), { recursive: true });
    await Deno.writeFile(join(bad("cut"), "1_x", "t.png"), png.slice(0, png.length >> 1));
    await Deno.mkdir(join(bad("latin1"), "1_x"), { recursive: true });
    await Deno.writeFile(join(bad("latin1"), "1_x", "c.png"), png);
    await Deno.writeFile(join(bad("latin1"), "1_x", "c.txt"), new Uint8Array([0x63, 0x61, 0xe9]));
    await Deno.mkdir(join(bad("empty"), "1_x"), { recursive: true });
    await Deno.mkdir(join(bad("noprefix"), "cats"), { recursive: true });
    await Deno.writeFile(join(bad("noprefix"), "cats", "c.png"), png);
    const before = await names(root);
    const base = [
      "train",
      "--pretrained-model-name-or-path",
      join(root, "model"),
      "--train-data-dir",
      join(root, "train"),
      "--caption-extension",
      ".txt",
      "--max-train-steps",
      "1",
    ];
    const out = ["--output-dir", join(root, "out")];
    const cases: [string[], number, string][] = [
      [[...base, ...out, "--wings", "2"], 2, 'train has no option "--wings"'],
      [[...base, ...out, "--v2"], 2, 'The kohya option "--v2" is not supported here'],
      [[...base, ...out, "--config", join(root, "bad.toml")], 1, "bad.toml line 2"],
      [[...base, ...out, "--config", join(root, "unknown.toml")], 1, "line 3: wings"],
      [[...base, "--output-dir", join(root, "file", "out")], 1, "is not writable"],
      [[...base, ...out, "--resolution", "30"], 1, "use 28 or 32 instead of 30"],
      [[...base, ...out, "--resolution", "16", "--clip-skip", "3"], 1, "has 2 layers"],
      [
        [...base, ...out, "--gradient_checkpointing", "--network_dropout", "0.1"],
        1,
        "Gradient checkpointing with network dropouts",
      ],
    ];
    const data = (name: string) => [...base, ...out, "--train-data-dir", bad(name)];
    cases.push(
      [data("cut"), 1, "t.png"],
      [data("latin1"), 1, "c.txt"],
      [data("empty"), 1, "1_x"],
      [data("noprefix"), 1, "cats"],
    );
    for (const [args, code, text] of cases) {
      const r = await run(args);
      equal(r.code, code, `${args.slice(-2).join(" ")}: ${r.stderr}`);
      ok(r.stderr.includes(text), `${args.slice(-2).join(" ")}: "${r.stderr}" lacks ${text}`);
      ok(!r.stderr.includes("    at "), `no stack trace: ${r.stderr}`);
      deepEqual(await names(root), before, `${args.slice(-2).join(" ")} wrote something`);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
