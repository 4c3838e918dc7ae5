// `mod.ts eval --ablation blockwise` (issue 12, deliverable 4): the presets' kohya indices and
// plans on the shipped mini SD, the claim lines on made-up numbers, bad options, and the whole
// ablation end to end at a tiny size (1 seed, 1 step, 1 image per prompt set, 1 sampling step,
// one preset, LoCon; ~32 s on 2 busy cores, 2 images per set took ~41 s).
import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { unetConfigFromDiffusers } from "../src/nn/unet.ts";
import { makePlan } from "../src/lora/plan.ts";
import { IDENTITY_CONCEPT } from "../src/eval/concepts.ts";
import { UsageError } from "../src/cli/_args.ts";
import type { AblationResults } from "../src/cli/_ablation_report.ts";
import { blockwiseClaims } from "../src/cli/_blockwise_claims.ts";
import { blockwiseConditions } from "../src/cli/_blockwise_conditions.ts";
import { BLOCKWISE_MEASURES, blockwiseCases } from "../src/cli/_blockwise_measure.ts";
import { vaeCeiling } from "../src/cli/_demo_measure.ts";
import { bundledClassifierPath } from "../src/cli/bundled.ts";
import { loadStableDiffusion } from "../src/nn/loaders_fs.ts";
import { loadClassifier } from "../src/eval/classifier_fs.ts";
import { blockwiseHelp, readBlockwiseSettings } from "../src/cli/_blockwise_options.ts";
import {
  adapterTrainOptions,
  type BlockChoice,
  presetIndices,
} from "../src/cli/_blockwise_plan.ts";
import { runCli } from "./_cli_fixtures.ts";
import "./_helpers.ts"; // acquires the GPU device

const MINI_SD = new URL("../models/mini_sd", import.meta.url).pathname;
const MINI_UNET = unetConfigFromDiffusers(
  JSON.parse(await Deno.readTextFile(join(MINI_SD, "unet", "config.json"))),
);

/** The U-Net blocks (diffusers prefixes) a plan puts adapters in, by adapter kind. */
function plannedBlocks(blocks: BlockChoice, type: "lora" | "locon"): Record<string, string[]> {
  const o = adapterTrainOptions({ concept: IDENTITY_CONCEPT, blocks, type }, {
    model: MINI_SD,
    config: MINI_UNET,
    outputDir: "unused",
    steps: 1,
    seed: 1,
  });
  // the options as the trainer hands them to makePlan
  const plan = makePlan(MINI_UNET, null, {
    rank: o.networkDim!,
    alpha: o.networkAlpha!,
    ...(o.convDim !== undefined ? { convRank: o.convDim, convAlpha: o.convAlpha! } : {}),
    ...(o.blockDims ? { blockDims: o.blockDims } : {}),
    ...(o.convBlockDims ? { convBlockDims: o.convBlockDims } : {}),
  });
  const out: Record<string, string[]> = {};
  for (const e of plan.entries) {
    const block = /^(down_blocks\.\d|mid_block|up_blocks\.\d)/.exec(e.path)?.[1] ?? e.path;
    (out[e.adapter] ??= []).includes(block) || out[e.adapter]!.push(block);
  }
  return out;
}

Deno.test("blockwise presets on the mini SD: upper in0 + out1, middle mid, lower in1 + out0", () => {
  deepEqual(presetIndices("upper", MINI_UNET), [1, 3, 16, 17]);
  deepEqual(presetIndices("middle", MINI_UNET), [12]);
  deepEqual(presetIndices("lower", MINI_UNET), [4, 13, 14, 15]);
  // a LoRA adapts attention (and 1x1) layers only: in1 and out0 have none
  deepEqual(plannedBlocks("upper", "lora"), { lora: ["down_blocks.0", "up_blocks.1"] });
  deepEqual(plannedBlocks("middle", "lora"), { lora: ["mid_block"] });
  deepEqual(plannedBlocks("lower", "lora"), {});
  deepEqual(plannedBlocks("upper", "locon"), {
    lora: ["down_blocks.0", "up_blocks.1"],
    locon: ["down_blocks.0", "up_blocks.1"],
  });
  deepEqual(plannedBlocks("lower", "locon"), {
    lora: ["down_blocks.1", "up_blocks.0"],
    locon: ["down_blocks.1", "up_blocks.0"],
  });
  deepEqual(plannedBlocks("all", "lora").lora, [
    "down_blocks.0",
    "mid_block",
    "up_blocks.1",
  ]);
  equal(blockwiseConditions(["upper", "middle", "lower"], ["lora", "locon"]).length, 37);
});

Deno.test("blockwise claims: paired differences over seeds decide each yes / no line", () => {
  const names = blockwiseConditions(["upper", "lower"], ["lora"]).map((c) => c.name);
  // every condition 0.5 on every measure and seed, then the ones the claims compare set apart
  const values = (v: number) =>
    Object.fromEntries(BLOCKWISE_MEASURES.map((m) => [m.key, [v, v, v]]));
  const r: AblationResults = {
    title: "t",
    seeds: [1, 2, 3],
    measures: BLOCKWISE_MEASURES,
    conditions: names.map((name) => ({ name, values: values(0.5) })),
  };
  const set = (name: string, key: string, v: number[]) => {
    r.conditions.find((c) => c.name === name)!.values[key] = v;
  };
  // upper + all beats all + all on both measures, by 0.2 / 0.1 +- 0.1 over three seeds
  set("LoRA: ID upper + style all", "bothIdentity", [0.6, 0.7, 0.8]);
  set("LoRA: ID upper + style all", "bothStyle", [0.6, 0.6, 0.6]);
  // all + upper wins identity but loses style
  set("LoRA: ID all + style upper", "bothIdentity", [0.9, 0.9, 0.9]);
  set("LoRA: ID all + style upper", "bothStyle", [0.4, 0.4, 0.4]);
  set("ID lower LoRA", "identity", [0.9, 0.9, 0.9]);
  const lines = blockwiseClaims(r, ["upper", "lower"], ["lora"]);
  equal(lines.length, 3 * 2 + 4);
  const line = (start: string) => lines.find((l) => l.startsWith(start)) ?? "";
  match(
    line("LoRA: ID upper + style all beats LoRA: ID all + style all"),
    new RegExp(
      String.raw`: yes; identity acc\. 0\.700 vs 0\.500 \(difference \+0\.200 ± 0\.248, ` +
        String.raw`interval excludes 0: no\); style score 0\.600 vs 0\.500 \(difference ` +
        String.raw`\+0\.100 ± 0\.000, interval excludes 0: yes\)`,
    ),
  );
  match(line("LoRA: ID all + style upper beats"), /: no;/);
  match(line("LoRA: ID upper + style upper beats"), /: no;/); // ties are not wins
  match(
    line("LoRA: upper-block ID keeps the identity best alone"),
    /: no \(upper 0\.500, lower 0\.900\)/,
  );
  match(
    line("LoRA: upper-block style keeps the style best alone"),
    /: no \(upper 0\.500, lower 0\.500\)/,
  );
  // one seed: no interval, said so
  const one = {
    ...r,
    seeds: [1],
    conditions: r.conditions.map((c) => ({
      ...c,
      values: Object.fromEntries(Object.entries(c.values).map(([k, v]) => [k, v.slice(0, 1)])),
    })),
  };
  match(blockwiseClaims(one, ["upper"], ["lora"])[0]!, /one seed: no interval/);
});

Deno.test("blockwise options: defaults, lists, and bad values named with what is accepted", async () => {
  const d = readBlockwiseSettings({});
  deepEqual([d.seeds, d.presets, d.types], [[1, 2, 3], ["upper", "middle", "lower"], [
    "lora",
    "locon",
  ]]);
  equal(d.outputDir, "runs/ablation_blockwise");
  const bad: [Record<string, string>, RegExp][] = [
    [{ seeds: "1,x" }, /--seeds must be a whole number from 0 to 4294967295.*"x"/],
    [{ seeds: "1,,2" }, /--seeds has an empty item/],
    [{ seeds: "2,2" }, /--seeds names "2" twice/],
    [{ presets: "top" }, /--presets must be one of upper, middle, lower; got "top"/],
    [{ types: "lora,lora" }, /--types names "lora" twice/],
    [{ steps: "0" }, /--steps must be a whole number from 1 to 100000/],
    [{ images: "2.5" }, /--images must be a whole number/],
    [{ "sample-steps": "" }, /--sample-steps must be a whole number/],
  ];
  for (const [v, message] of bad) {
    throws(
      () => readBlockwiseSettings(v),
      (e: Error) => e instanceof UsageError && message.test(e.message),
      JSON.stringify(v),
    );
  }
  const help = await blockwiseHelp();
  ok(
    help.includes("upper: in0 + out1, kohya indices 1, 3, 16, 17; attention in each"),
    help,
  );
  // through the command line: exit 2, one error line, nothing created
  const dir = join(await Deno.makeTempDir(), "run");
  const r = await runCli([
    "eval",
    "--ablation",
    "blockwise",
    "--types",
    "dora",
    "--output-dir",
    dir,
  ]);
  equal(r.code, 2, r.stderr);
  match(r.stderr, /--types must be one of lora, locon; got "dora"/);
  ok(!(await Deno.stat(dir).then(() => true, () => false)), "the run folder was created");
});

/** The tensor names of a safetensors file (its JSON header). */
async function safetensorsKeys(path: string): Promise<string[]> {
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  return Object.keys(header).filter((k) => k !== "__metadata__");
}

Deno.test("mod.ts eval --ablation blockwise runs end to end at a tiny size and writes every output", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await runCli([
      "eval",
      "--ablation",
      "blockwise",
      "--seeds",
      "7",
      "--steps",
      "1",
      "--images",
      "1",
      "--sample-steps",
      "1",
      "--presets",
      "upper",
      "--types",
      "locon",
      "--output-dir",
      dir,
    ]);
    equal(r.code, 0, r.stderr);
    const rows = [
      "base model",
      "ID all LoCon",
      "ID upper LoCon",
      "style all LoCon",
      "style upper LoCon",
      "LoCon: ID all + style all",
      "LoCon: ID upper + style all",
      "LoCon: ID all + style upper",
      "LoCon: ID upper + style upper",
    ];
    const table = await Deno.readTextFile(join(dir, "table.md"));
    equal(table, r.stdout.slice(0, table.length), "the table is printed");
    const tableRows = table.split("\n").filter((l) =>
      /^\| [^-]/.test(l) && !l.startsWith("| condition")
    );
    deepEqual(tableRows.map((l) => l.split(" | ")[0]!.slice(2)), rows);
    // base: every measure; an adapter alone: its trigger's and no trigger; compositions: both
    match(tableRows[0]!, /^\| base model( \| [01]\.\d{4}){5} \|$/);
    match(tableRows[1]!, /^\| ID all LoCon \| [01]\.\d{4} \| - \| - \| - \| [01]\.\d{4} \|$/);
    match(tableRows[3]!, /^\| style all LoCon \| - \| [01]\.\d{4} \| - \| - \| [01]\.\d{4} \|$/);
    match(tableRows[8]!, /^\| LoCon: ID upper \+ style upper \| - \| - \|( [01]\.\d{4} \|){3}$/);
    for (
      const claim of [
        "ID upper + style all beats",
        "ID all + style upper beats",
        "ID upper + style upper beats",
      ]
    ) {
      match(
        r.stdout,
        new RegExp(
          `- LoCon: ${claim.replaceAll("+", "\\+")} LoCon: ID all \\+ style all .*: (yes|no);`,
        ),
      );
    }
    match(r.stderr, /seed 7: trained ID all LoCon \(1\/4, .*ETA/);
    match(r.stderr, /seed 7: measured LoCon: ID upper \+ style upper \(9\/9: .*100% done/);

    const json = JSON.parse(await Deno.readTextFile(join(dir, "results.json")));
    deepEqual(json.seeds, [7]);
    deepEqual(json.conditions.map((c: { name: string }) => c.name), rows);
    deepEqual(Object.keys(json.conditions[0].measures), BLOCKWISE_MEASURES.map((m) => m.key));
    equal(json.conditions[1].measures.style.mean, null, "not measured: null");
    equal(json.claims.length, 4);
    // the VAE ceiling of both measures comes first, as the shipped model's VAE gives them
    const models = await loadStableDiffusion(MINI_SD);
    const classifier = await loadClassifier(bundledClassifierPath());
    try {
      const cases = blockwiseCases(1);
      deepEqual(json.vaeCeiling, {
        identity: await vaeCeiling(models, classifier, cases.identity, 32),
        style: await vaeCeiling(models, classifier, cases.style, 32, "fill"),
      });
    } finally {
      for (const m of [models.unet, models.vae, models.textEncoder, classifier]) m.dispose();
    }
    match(
      json.claims[0],
      /^VAE ceiling: \d+% of the identity .* \d+% of the style prompts' as striped/,
    );
    ok(r.stderr.includes(json.claims[0]), "the ceiling is printed before the work");
    equal(json.seconds.training.length, 4);
    match(json.presetMapping[0], /^upper: in0 \+ out1/);
    equal(
      json.settings.model,
      "models/mini_sd",
      "the shipped model, named from the repository root",
    );

    const svg = await Deno.readTextFile(join(dir, "chart.svg"));
    ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"));
    for (const row of rows) ok(svg.includes(`>${row}</text>`), row);

    // the page links one existing JPEG grid per condition and prompt set
    const html = await Deno.readTextFile(join(dir, "index.html"));
    const srcs = [...html.matchAll(/<img src="(seed7\/[^"]+\.jpg)"/g)].map((m) => m[1]!);
    equal(srcs.length, 4 + 4 * 2 + 4 * 2);
    for (const src of srcs) {
      const bytes = await Deno.readFile(join(dir, src));
      equal([...bytes.subarray(0, 3)].join(), "255,216,255", src);
    }
    for (const row of rows) ok(html.includes(`<h3>${row}</h3>`), row);
    ok(html.includes("Claims in this run") && html.includes('src="chart.svg"'));

    // the upper LoCon holds U-Net modules of in0 and out1 only, convs included; all-block has mid
    const loras = join(dir, "seed7", "loras");
    const upper = (await safetensorsKeys(join(loras, "zqstar_upper_locon.safetensors")))
      .filter((k) => k.startsWith("lora_unet_"));
    ok(upper.length > 0);
    ok(upper.every((k) => /^lora_unet_(down_blocks_0|up_blocks_1)_/.test(k)), upper.join());
    ok(upper.some((k) => k.includes("resnets_0_conv1")), "LoCon: conv modules");
    const all = await safetensorsKeys(join(loras, "vxstripe_all_locon.safetensors"));
    ok(all.some((k) => k.startsWith("lora_unet_mid_block_")), "all blocks: mid block");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
