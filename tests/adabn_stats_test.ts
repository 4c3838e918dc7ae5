// AdaBN statistics: the exact estimate equals a CPU two-pass computation (float64) over the same
// data, the online merge equals the exact estimate, per-band statistics are chosen by t, and
// online adaptation during training merges each step once.
import assert from "node:assert/strict";
import { AdaBN, BatchNorm2d, Module, noGrad, type Tensor, tensor } from "../mod.ts";
import { batchNormRef } from "../src/ops/batch_norm.ts";
import { assertClose, randomData } from "./_helpers.ts";

const C = 3, H = 2, W = 3;

// Two batch-norm layers in a row; the first has a non-trivial scale and shift so the second sees
// inputs that depend on how the first normalizes.
class TwoNorms extends Module {
  constructor() {
    super();
    const a = this.addModule("a", new BatchNorm2d(C));
    this.addModule("b", new BatchNorm2d(C));
    a.param("weight").assign(tensor([1.5, 0.5, 2], [C]));
    a.param("bias").assign(tensor([0.25, -1, 3], [C]));
  }
  forward(x: Tensor): Tensor {
    return this.child<BatchNorm2d>("b").forward(this.child<BatchNorm2d>("a").forward(x));
  }
}

// Batches of 2, 3 and 1 samples with per-channel offsets and scales (a shifted target domain).
function batchData(B: number, seed: number, shift = 0): Float64Array {
  const x = randomData(B * C * H * W, seed);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / (H * W)) % C;
    x[i] = x[i]! * (1 + c) + 2 * c - 1 + shift;
  }
  return x;
}
const SIZES = [2, 3, 1];
const DATA = SIZES.map((B, i) => batchData(B, 10 + i));

// Float64 reference: mean first, then the mean squared deviation, over every value of a channel.
function twoPass(batches: Float64Array[]): { mean: number[]; variance: number[] } {
  const mean: number[] = [], variance: number[] = [];
  for (let c = 0; c < C; c++) {
    const vals = batches.flatMap((x) =>
      Array.from(x).filter((_, i) => Math.floor(i / (H * W)) % C === c)
    );
    const m = vals.reduce((s, v) => s + v, 0) / vals.length;
    mean.push(m);
    variance.push(vals.reduce((s, v) => s + (v - m) ** 2, 0) / vals.length);
  }
  return { mean, variance };
}

// The second layer's inputs: each batch normalized by the first layer with its batch statistics.
function afterFirst(weight: number[], bias: number[]): Float64Array[] {
  return DATA.map((x, i) =>
    batchNormRef(x, [SIZES[i]!, C, H, W], weight, bias, null, null, { training: true }).y
  );
}

async function stats(adabn: AdaBN, path: string, band = 0) {
  const s = adabn.statistics(path, band);
  return { mean: await s.mean.toArray(), variance: await s.variance.toArray(), count: s.count };
}

const batchesOf = (model: TwoNorms, data = DATA) =>
  data.map((x, i) => () => model.forward(tensor(x, [SIZES[i]!, C, H, W])));

// f32 GPU sums over 120 values of magnitude <= ~10: rounding stays near 1e-6 relative, so 1e-5
// absolute plus 1e-5 relative separates a right answer from any wrong formula (e.g. the unbiased
// variance differs by 1/119 ~ 8e-3 relative).
const ATOL = 1e-5, RTOL = 1e-5;

Deno.test("AdaBN exact estimate equals a CPU two-pass mean and population variance per layer", async () => {
  const model = new TwoNorms();
  using adabn = AdaBN.attach(model);
  adabn.estimate(batchesOf(model));
  const want = [twoPass(DATA), twoPass(afterFirst([1.5, 0.5, 2], [0.25, -1, 3]))];
  for (const [i, path] of ["a", "b"].entries()) {
    const got = await stats(adabn, path);
    assert.equal(got.count, 6 * H * W);
    assertClose(got.mean, want[i]!.mean, ATOL, RTOL, `${path} mean`);
    assertClose(got.variance, want[i]!.variance, ATOL, RTOL, `${path} variance`);
  }
  model.dispose();
});

Deno.test("AdaBN online merge equals the exact two-pass estimate", async () => {
  const model = new TwoNorms();
  using exact = AdaBN.attach(model);
  exact.estimate(batchesOf(model));
  exact.detach();
  using online = AdaBN.attach(model);
  online.estimate(batchesOf(model), { method: "online" });
  for (const path of ["a", "b"]) {
    const e = await stats(exact, path), o = await stats(online, path);
    assert.equal(o.count, e.count);
    assertClose(o.mean, e.mean, ATOL, RTOL, `${path} mean`);
    assertClose(o.variance, e.variance, ATOL, RTOL, `${path} variance`);
  }
  model.dispose();
});

Deno.test("AdaBN exact estimate rejects a one-shot iterator", () => {
  const model = new TwoNorms();
  using adabn = AdaBN.attach(model);
  assert.throws(() => adabn.estimate(batchesOf(model).values()), /one-shot iterator/);
  model.dispose();
});

Deno.test("AdaBN per-band statistics are selected by the timestep of the forward", async () => {
  const model = new TwoNorms();
  using adabn = AdaBN.attach(model, { bands: [0, 500, 1000] });
  const low = DATA, high = SIZES.map((B, i) => batchData(B, 20 + i, 5));
  adabn.estimate([
    ...batchesOf(model, low).map((f) => (a: AdaBN) => (a.setTimesteps(100), f())),
    ...batchesOf(model, high).map((f) => (a: AdaBN) => (a.setTimesteps(900), f())),
  ]);
  const got0 = await stats(adabn, "a", 0), got1 = await stats(adabn, "a", 1);
  assertClose(got0.mean, twoPass(low).mean, ATOL, RTOL, "band 0 mean");
  assertClose(got1.mean, twoPass(high).mean, ATOL, RTOL, "band 1 mean");
  // Eval: each t normalizes with its band's statistics; a mixed batch per sample.
  const probe = batchData(2, 99);
  const run = (t: number | number[]) =>
    noGrad(() => {
      adabn.setTimesteps(t);
      return model.forward(tensor(probe, [2, C, H, W]));
    }).toArray();
  const y0 = await run(100), y1 = await run(900), mixed = await run([100, 900]);
  const half = C * H * W;
  assert.ok(y0.some((v, i) => Math.abs(v - y1[i]!) > 0.1), "the two bands give the same output");
  assert.deepEqual(mixed.slice(0, half), y0.slice(0, half));
  assert.deepEqual(mixed.slice(half), y1.slice(half));
  const ref =
    batchNormRef(probe, [2, C, H, W], [1.5, 0.5, 2], [0.25, -1, 3], got1.mean, got1.variance, {
      training: false,
    }).y;
  const b1 = await stats(adabn, "b", 1);
  const want =
    batchNormRef(ref, [2, C, H, W], null, null, b1.mean, b1.variance, { training: false })
      .y;
  assertClose(y1, want, 1e-4, 1e-4, "band 1 output"); // f32 normalization of values up to ~10
  assert.throws(() => adabn.setTimesteps(1001), /outside the AdaBN bands/);
  model.dispose();
});

Deno.test("AdaBN feeds each band the samples of a mixed-timestep batch", async () => {
  const model = new TwoNorms();
  using adabn = AdaBN.attach(model, { bands: [0, 500, 1000] });
  const x = batchData(3, 30), per = C * H * W;
  adabn.estimate([(a) => {
    a.setTimesteps([100, 900, 100]);
    return model.forward(tensor(x, [3, C, H, W]));
  }]);
  const sample = (i: number) => x.slice(i * per, (i + 1) * per);
  const low = new Float64Array([...sample(0), ...sample(2)]);
  for (const [band, data] of [[0, low], [1, sample(1)]] as const) {
    const got = await stats(adabn, "a", band), want = twoPass([data]);
    assertClose(got.mean, want.mean, ATOL, RTOL, `band ${band} mean`);
    assertClose(got.variance, want.variance, ATOL, RTOL, `band ${band} variance`);
  }
  model.dispose();
});

Deno.test("AdaBN during training merges each step's batch once, then freezes", async () => {
  const model = new TwoNorms();
  using adabn = AdaBN.attach(model);
  adabn.unfreeze();
  for (const [i, x] of DATA.entries()) {
    adabn.setTimesteps(500);
    const input = tensor(x, [SIZES[i]!, C, H, W]);
    model.forward(input).dispose();
    model.forward(input).dispose(); // a gradient-checkpointing re-run of the same step
    input.dispose();
  }
  const got = await stats(adabn, "a");
  assert.equal(got.count, 6 * H * W);
  assertClose(got.mean, twoPass(DATA).mean, ATOL, RTOL, "mean");
  assertClose(got.variance, twoPass(DATA).variance, ATOL, RTOL, "variance");
  adabn.freeze();
  adabn.setTimesteps(500);
  model.forward(tensor(DATA[0]!, [2, C, H, W])).dispose();
  assert.equal(adabn.statistics("a").count, 6 * H * W);
  assert.equal((await adabn.snapshot()).mode, "during");
  model.dispose();
});
