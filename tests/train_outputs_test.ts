// Run outputs: checkpoint names and pruning, progress line, loss log files, loss SVG, HTML report,
// atomic writes, and the whole-run config file.
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { checkpointName, checkpointsToPrune } from "../src/train/checkpoint_names.ts";
import { formatDuration, formatProgress, LossSmoother, RateMeter } from "../src/train/progress.ts";
import { lossCurveSvg, niceTicks } from "../src/train/loss_svg.ts";
import { reportHtml } from "../src/train/report_html.ts";
import { RunLog, writeReport } from "../src/train/run_log_fs.ts";
import { ensureWritableDir, writeFileAtomic } from "../src/train/atomic_fs.ts";
import { configArgs, parseRunConfig } from "../src/train/run_config.ts";
import { ConfigError } from "../src/train/errors.ts";
import { rejectsWith, throwsWith } from "./_train_helpers.ts";

Deno.test("checkpointName() gives kohya's file and state names", () => {
  equal(checkpointName("dog", { epoch: 3 }), "dog-000003.safetensors");
  equal(checkpointName("dog", { step: 500 }), "dog-step00000500.safetensors");
  equal(checkpointName("dog", "final"), "dog.safetensors");
  equal(checkpointName("dog", { epoch: 12 }, "-state"), "dog-000012-state");
  equal(checkpointName("dog", "final", "-state"), "dog-state");
});

Deno.test("checkpointsToPrune() keeps the newest N of one kind and never the final", () => {
  const names = [
    "dog.safetensors",
    "dog-000010.safetensors",
    "dog-000002.safetensors",
    "dog-000001.safetensors",
    "dog-step00000100.safetensors",
    "dog-step00000050.safetensors",
    "dogs-000001.safetensors",
    "dog-000003.safetensors.tmp",
  ];
  deepEqual(checkpointsToPrune(names, "dog", "epoch", 2), ["dog-000001.safetensors"]);
  deepEqual(checkpointsToPrune(names, "dog", "epoch", 1), [
    "dog-000001.safetensors",
    "dog-000002.safetensors",
  ]);
  deepEqual(checkpointsToPrune(names, "dog", "step", 1), ["dog-step00000050.safetensors"]);
  deepEqual(checkpointsToPrune(names, "dog", "step", 5), []);
});

Deno.test("formatProgress() shows step, epoch, it/s, ETA, smoothed loss and LR", () => {
  equal(
    formatProgress({
      step: 120,
      totalSteps: 1600,
      epoch: 2,
      totalEpochs: 10,
      itPerSec: 2,
      loss: 0.12345,
      lr: 1e-4,
    }),
    "step 120/1600 (7.5%) | epoch 2/10 | 2.00 it/s | ETA 12:20 | loss 0.1235 | lr 1.00e-4",
  );
  equal(
    formatProgress({
      step: 0,
      totalSteps: 10,
      epoch: 1,
      totalEpochs: 1,
      itPerSec: 0.25,
      loss: NaN,
      lr: 5e-5,
    }),
    "step 0/10 (0.0%) | epoch 1/1 | 4.00 s/it | ETA 0:40 | loss - | lr 5.00e-5",
  );
  equal(formatDuration(3725), "1:02:05");
  const s = new LossSmoother(0.9);
  ok(Number.isNaN(s.value));
  s.add(1);
  equal(s.value, 1);
  s.add(0);
  s.add(NaN); // skipped
  // (0.9 * 0.1 + 0.1 * 0) / (1 - 0.81) = 0.09 / 0.19
  ok(Math.abs(s.value - 0.09 / 0.19) < 1e-12);
  const m = new RateMeter(2);
  [0, 1000, 1500, 2000].forEach((t) => m.tick(t));
  equal(m.perSecond, 2); // the last 2 intervals: 2 steps in 1 s
});

Deno.test("lossCurveSvg() draws every point inside the plot and references nothing", () => {
  const pts = [{ step: 1, loss: 0.5, smoothed: 0.5 }, { step: 2, loss: 0.1, smoothed: 0.3 }, {
    step: 3,
    loss: 0.3,
    smoothed: 0.3,
  }];
  const svg = lossCurveSvg(pts, 640, 320);
  ok(svg.startsWith("<svg") && svg.endsWith("</svg>"));
  const lines = [...svg.matchAll(/points="([^"]*)"/g)].map((m) => m[1]!.split(" "));
  equal(lines.length, 2, "raw and smoothed curves");
  // left margin 56, top 12, plot 572 x 276: step 1 at x 56 with the top loss at y 12
  deepEqual(lines[0], ["56.0,12.0", "342.0,288.0", "628.0,150.0"]);
  ok(!/href|<script|url\(/.test(svg));
  deepEqual(niceTicks(0.1, 0.5), [0.1, 0.2, 0.3, 0.4, 0.5]);
  ok(lossCurveSvg([]).includes("no loss logged yet"));
});

Deno.test("reportHtml() embeds samples as data URIs and escapes text", () => {
  const jpeg = new Uint8Array([0xff, 0xd8, 1, 2, 3, 0xff, 0xd9]);
  const html = reportHtml({
    title: "dog <v1>",
    settings: { learning_rate: 1e-4, note: "a & b" },
    lossSvg: lossCurveSvg([{ step: 1, loss: 1 }]),
    prompts: ["a <b> dog", "cat"],
    samples: [{ step: 0, prompt: 0, jpeg }, { step: 10, prompt: 1, jpeg }],
  });
  const uris = [...html.matchAll(/src="data:image\/jpeg;base64,([^"]+)"/g)].map((m) => m[1]!);
  equal(uris.length, 2);
  deepEqual(Uint8Array.from(atob(uris[0]!), (c) => c.charCodeAt(0)), jpeg);
  ok(html.includes("dog &#60;v1&#62;") && html.includes("a &#38; b") && !html.includes("<b>"));
  // self-contained: no src or href other than data URIs
  ok(![...html.matchAll(/(?:src|href)="([^"]*)"/g)].some((m) => !m[1]!.startsWith("data:")));
  ok(html.includes("<svg"));
});

Deno.test("RunLog writes JSONL, CSV and the SVG, and resumes from a step", async () => {
  const dir = join(await Deno.makeTempDir(), "logs");
  const log = await RunLog.open(dir);
  for (let s = 1; s <= 4; s++) {
    await log.add({ step: s, epoch: 1, loss: 1 / s, smoothed: 1 / s, lr: 1e-4, elapsed: s });
  }
  const jsonl = (await Deno.readTextFile(join(dir, "losses.jsonl"))).trim().split("\n");
  equal(jsonl.length, 4);
  deepEqual(JSON.parse(jsonl[1]!), {
    step: 2,
    epoch: 1,
    loss: 0.5,
    smoothed: 0.5,
    lr: 1e-4,
    elapsed: 2,
  });
  const csv = (await Deno.readTextFile(join(dir, "losses.csv"))).trim().split("\n");
  deepEqual(csv.slice(0, 2), [
    "step,epoch,loss,smoothed_loss,lr,elapsed_s",
    "1,1,1,1,0.0001,1.000",
  ]);
  const svg = await Deno.readTextFile(join(dir, "loss_curve.svg"));
  equal([...svg.matchAll(/points="([^"]*)"/g)][0]![1]!.split(" ").length, 4);
  const report = await writeReport(log, {
    title: "t",
    settings: { a: 1 },
    prompts: [],
    samples: [],
  });
  const html = await Deno.readTextFile(report);
  equal(
    [...html.matchAll(/points="([^"]*)"/g)][0]![1]!.split(" ").length,
    4,
    "report has the curve",
  );
  await Deno.remove(report);
  const resumed = await RunLog.open(dir, { resumeStep: 2 });
  deepEqual(resumed.records.map((r) => r.step), [1, 2]);
  equal((await Deno.readTextFile(join(dir, "losses.csv"))).trim().split("\n").length, 3);
  deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(), [
    "loss_curve.svg",
    "losses.csv",
    "losses.jsonl",
  ]);
});

Deno.test("atomic writes leave no temporary file; an unwritable folder is named", async () => {
  const dir = await Deno.makeTempDir();
  await writeFileAtomic(join(dir, "a.txt"), "one");
  await writeFileAtomic(join(dir, "a.txt"), "two");
  equal(await Deno.readTextFile(join(dir, "a.txt")), "two");
  deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["a.txt"]);
  const under = join(dir, "a.txt", "out"); // a folder inside a file cannot exist
  await rejectsWith(
    () => ensureWritableDir(under),
    ConfigError,
    `output folder ${under} is not writable`,
  );
  await rejectsWith(() => writeFileAtomic(join(under, "x"), "x"), ConfigError, "is not writable");
});

Deno.test("parseRunConfig() reads flag names from TOML and names bad keys with their line", () => {
  const text = `pretrained_model_name_or_path = "models/mini"
[training]
learning_rate = 1e-4
network-dim = 8
save_state = true
[logging]
log_dir = "logs"
`;
  const flags = parseRunConfig(text, "train.toml");
  deepEqual(flags, {
    "pretrained-model-name-or-path": "models/mini",
    "learning-rate": 1e-4,
    "network-dim": 8,
    "save-state": true,
    "log-dir": "logs",
  });
  deepEqual(configArgs({ ...flags, "save-state": false, "prompts": ["a", "b"] }), [
    "--pretrained-model-name-or-path",
    "models/mini",
    "--learning-rate",
    "0.0001",
    "--network-dim",
    "8",
    "--log-dir",
    "logs",
    "--prompts",
    "a",
    "--prompts",
    "b",
  ]); // prettier-ignore
  const known = ["pretrained-model-name-or-path", "learning-rate", "network-dim", "save-state"];
  throwsWith(
    () => parseRunConfig(text, "train.toml", known),
    ConfigError,
    "train.toml line 7: log_dir is not a flag",
  );
  throwsWith(
    () => parseRunConfig("a = 1\nb = = 2\n", "train.toml"),
    ConfigError,
    "train.toml line 2",
  );
  throwsWith(
    () => parseRunConfig("[x]\na = 1\n[y]\na = 2\n", "t.toml"),
    ConfigError,
    "a is set twice",
  );
});
