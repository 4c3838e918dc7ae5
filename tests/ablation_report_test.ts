// The ablations' statistics (mean and 95% t-interval) and their table / JSON / SVG outputs.
import assert from "node:assert/strict";
import { meanCi, tQuantile975 } from "../src/eval/confidence.ts";
import { ablationJson, ablationMarkdown, ablationSvg } from "../src/cli/_ablation_report.ts";

Deno.test("meanCi: the 95% t-interval of a sample, by hand", () => {
  // [1, 2, 3]: mean 2, sample sd 1, t(2) = 4.303 -> 4.303 / sqrt(3) = 2.4843.
  const s = meanCi([1, 2, 3]);
  assert.equal(s.mean, 2);
  assert.ok(Math.abs(s.ci95 - 4.303 / Math.sqrt(3)) < 1e-12);
  assert.equal(tQuantile975(30), 2.042);
  assert.equal(tQuantile975(200), 1.96);
  assert.equal(Number.isNaN(meanCi([5]).ci95), true);
});

Deno.test("ablation outputs: table, JSON and SVG carry every condition and measure", () => {
  const r = {
    title: "t <1>",
    seeds: [1, 2, 3],
    measures: [{ key: "psnr", label: "PSNR", higherIsBetter: true }],
    conditions: [
      { name: "base", values: { psnr: [20, 21, 22] } },
      { name: "ada", values: { psnr: [NaN, NaN, NaN] } },
    ],
  };
  const md = ablationMarkdown(r);
  assert.ok(md.includes(`| base | 21.000 ± ${(4.303 / Math.sqrt(3)).toFixed(3)} |`));
  assert.ok(md.includes("| ada | - |"));
  const json = ablationJson(r) as { conditions: { measures: { psnr: { mean: number } } }[] };
  assert.equal(json.conditions[0]?.measures.psnr.mean, 21);
  const svg = ablationSvg(r);
  assert.ok(svg.includes("t &#60;1&#62;"));
  assert.equal(svg.match(/<rect [^>]*fill="#6a9fd4"/g)?.length, 1);
});

Deno.test("ablation SVG: a panel whose values are all zero gets a unit axis", () => {
  const svg = ablationSvg({
    title: "zeros",
    seeds: [1],
    measures: [{ key: "acc", label: "acc", higherIsBetter: true }],
    conditions: [{ name: "base", values: { acc: [0] } }],
  });
  assert.ok(svg.includes(">1</text>"), "a tick at 1");
  assert.ok(!svg.includes("e-"), "no ticks at tiny powers of ten");
});
