// Caption augmentation (kohya's process_caption rules), LR schedules (golden values worked by hand
// from the transformers formulas) and kohya's sample-prompt lines.
import { deepEqual, equal, ok } from "node:assert/strict";
import { processCaption } from "../src/train/captions.ts";
import { lrSchedule, warmupSteps } from "../src/train/lr_schedule.ts";
import { parseSamplePrompts } from "../src/train/sample_prompts.ts";
import { Rng } from "../src/train/random.ts";
import { ConfigError } from "../src/train/errors.ts";
import { throwsWith } from "./_train_helpers.ts";

const CAPTION = "sks dog, red collar, grass, sun, park";

Deno.test("processCaption() keeps the first keepTokens and shuffles the rest reproducibly", () => {
  const opts = { shuffleCaption: true, keepTokens: 2 };
  const rng = new Rng(3);
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const c = processCaption(CAPTION, opts, rng);
    ok(c.startsWith("sks dog, red collar, "), c);
    deepEqual(c.split(", ").sort(), CAPTION.split(", ").sort());
    seen.add(c);
  }
  ok(seen.size > 1, "shuffling changes the order");
  const a = new Rng(9), b = new Rng(9);
  for (let i = 0; i < 10; i++) {
    equal(processCaption(CAPTION, opts, a), processCaption(CAPTION, opts, b));
  }
});

Deno.test("processCaption() adds prefix and suffix and uses the first line only", () => {
  equal(
    processCaption("a\nb", { captionPrefix: "pre", captionSuffix: "post" }, new Rng(1)),
    "pre a",
  );
  equal(
    processCaption("a, b", { captionPrefix: "pre", captionSuffix: "post" }, new Rng(1)),
    "pre a, b post",
  );
});

Deno.test("processCaption() keeps the parts around keepTokensSeparator fixed", () => {
  const opts = { shuffleCaption: true, keepTokensSeparator: "|||" };
  const rng = new Rng(5);
  for (let i = 0; i < 20; i++) {
    const c = processCaption("sks, dog ||| a, b, c, d ||| best quality", opts, rng).split(", ");
    deepEqual(c.slice(0, 2), ["sks", "dog"]);
    equal(c.at(-1), "best quality");
    deepEqual(c.slice(2, 6).sort(), ["a", "b", "c", "d"]);
  }
});

Deno.test("caption and tag dropout happen at their rates", () => {
  const rng = new Rng(11);
  const n = 4000;
  let empty = 0, tags = 0;
  for (let i = 0; i < n; i++) {
    if (processCaption(CAPTION, { captionDropoutRate: 0.3 }, rng) === "") empty++;
    tags += processCaption(CAPTION, { captionTagDropoutRate: 0.5, keepTokens: 1 }, rng)
      .split(", ").length - 1;
  }
  // binomial: sd of the rate is sqrt(p (1 - p) / n) = 0.0072 and 0.0040 (4 flex tags); allow 4 sd
  ok(Math.abs(empty / n - 0.3) < 0.029, `caption dropout rate ${empty / n}`);
  ok(Math.abs(tags / (4 * n) - 0.5) < 0.016, `tag keep rate ${tags / (4 * n)}`);
  equal(processCaption(CAPTION, { captionDropoutEveryNEpochs: 2 }, rng, 4), "");
  equal(processCaption(CAPTION, { captionDropoutEveryNEpochs: 2 }, rng, 3), CAPTION);
});

// factors worked by hand from transformers' formulas; tolerance 1e-12 covers float rounding only
Deno.test("lrSchedule() matches the diffusers / transformers formulas", () => {
  const close = (got: number, want: number, what: string): void =>
    ok(Math.abs(got - want) < 1e-12, `${what}: ${got} vs ${want}`);
  const cases: [Parameters<typeof lrSchedule>[0], [number, number][]][] = [
    [{ name: "constant", totalSteps: 100 }, [[0, 1], [99, 1]]],
    [{ name: "constant_with_warmup", totalSteps: 100, warmup: 10 }, [[0, 0], [5, 0.5], [10, 1], [
      90,
      1,
    ]]],
    [{ name: "linear", totalSteps: 100, warmup: 10 }, [[5, 0.5], [10, 1], [55, 0.5], [100, 0]]],
    [{ name: "cosine", totalSteps: 100, warmup: 10 }, [[10, 1], [55, 0.5], [100, 0], [
      25,
      0.5 * (1 + Math.cos(Math.PI / 6)),
    ]]],
    [{ name: "cosine_with_restarts", totalSteps: 100, numCycles: 2 }, [[0, 1], [25, 0.5], [50, 1], [
      75,
      0.5,
    ], [100, 0]]],
    [{ name: "polynomial", totalSteps: 100, power: 2, baseLr: 1e-3 }, [
      [50, 0.250075],
      [100, 1e-4],
      [101, 1e-4],
    ]],
    [{ name: "linear", totalSteps: 100, warmup: 0.1 }, [[5, 0.5], [55, 0.5]]],
  ];
  for (const [opts, points] of cases) {
    const f = lrSchedule(opts);
    for (const [s, want] of points) close(f(s), want, `${opts.name} step ${s}`);
  }
  equal(warmupSteps(0.05, 30), 1);
  equal(warmupSteps(7, 30), 7);
  throwsWith(
    () => lrSchedule({ name: "constant", totalSteps: 10, warmup: 2 }),
    ConfigError,
    "constant_with_warmup",
  );
  throwsWith(
    () => lrSchedule({ name: "cosine_annealing", totalSteps: 10 }),
    ConfigError,
    'Unknown lr_scheduler "cosine_annealing"',
  );
});

Deno.test("parseSamplePrompts() reads kohya's line format", () => {
  const text = [
    "# a comment --w 64",
    "",
    "1girl, solo --n lowres, bad hands --w 512 --h 768 --d 42 --l 7 --s 28",
    "a cat --ss euler_a --s 5000 --g 3.5",
    "plain prompt",
  ].join("\n");
  const ps = parseSamplePrompts(text);
  deepEqual(ps, [
    {
      prompt: "1girl, solo",
      negativePrompt: "lowres, bad hands",
      width: 512,
      height: 768,
      seed: 42,
      cfgScale: 7,
      steps: 28,
      line: 3,
    },
    {
      prompt: "a cat",
      negativePrompt: "",
      width: 512,
      height: 512,
      steps: 1000,
      cfgScale: 7.5,
      sampler: "euler_a",
      line: 4,
    },
    {
      prompt: "plain prompt",
      negativePrompt: "",
      width: 512,
      height: 512,
      steps: 30,
      cfgScale: 7.5,
      line: 5,
    },
  ]);
  throwsWith(
    () => parseSamplePrompts("a --w wide", "p.txt"),
    ConfigError,
    "p.txt line 1: --w needs a whole number",
  );
  throwsWith(() => parseSamplePrompts("x\na --zz 3"), ConfigError, "line 2: unknown option --zz");
});
