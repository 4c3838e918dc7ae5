// Schedules, spacings, Karras sigmas, the training side, and the fused sampler ops (lincomb,
// catBatch, non-finite flags). Reference values: ../shared/DESIGN.md and diffusers' rules (the
// 25-step lists below were produced by a numpy transcription of each scheduler's set_timesteps).
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  addNoise,
  addNoiseRef,
  ArgumentError,
  createSampler,
  createSchedule,
  Generator,
  karrasSigmas,
  minSnrWeights,
  rand,
  randn,
  randomTimesteps,
  roundHalfEven,
  scope,
  ShapeError,
  snr,
  spacedTimesteps,
  tensor,
  trainingBatch,
  trainingNoise,
  trainingTarget,
  velocity,
} from "../mod.ts";
import {
  catBatch,
  firstNonFiniteStep,
  lincomb,
  lincombRef,
  markNonFinite,
  nonFiniteFlag,
  nonFiniteRef,
} from "../src/ops/lincomb.ts";
import { assertClose, checkOp } from "./_helpers.ts";

const sd = createSchedule();

Deno.test("createSchedule() gives SD 1.x's alphas_cumprod ends and sigma range", () => {
  equal(sd.trainSteps, 1000);
  assertClose([sd.alphasCumprod[0]!], [0.99915], 1e-7, 0, "ab_0");
  assertClose([sd.alphasCumprod[999]!], [0.0046601], 0, 2e-5, "ab_999");
  assertClose([sd.sigmaMin, sd.sigmaMax], [0.0291675, 14.614642], 0, 2e-6, "sigma range");
  // betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2
  assertClose([sd.betas[0]!, sd.betas[999]!], [0.00085, 0.012], 0, 1e-6, "betas");
});

Deno.test("createSchedule() builds linear and squaredcos_cap_v2 by diffusers' formulas", () => {
  const lin = createSchedule({ betaSchedule: "linear", betaStart: 1e-4, betaEnd: 0.02 });
  assertClose(
    [lin.betas[0]!, lin.betas[500]!, lin.betas[999]!],
    [
      1e-4,
      1e-4 + 500 * (0.02 - 1e-4) / 999,
      0.02,
    ],
    0,
    1e-6,
    "linear betas",
  );
  const cos = createSchedule({ betaSchedule: "squaredcos_cap_v2" });
  const abar = (t: number) => Math.cos((t + 0.008) / 1.008 * Math.PI / 2) ** 2;
  // alphas_cumprod telescopes to abar(t + 1) / abar(0) while no beta hits the 0.999 cap
  assertClose(
    [cos.alphasCumprod[0]!, cos.alphasCumprod[499]!, cos.alphasCumprod[900]!],
    [abar(1 / 1000) / abar(0), abar(500 / 1000) / abar(0), abar(901 / 1000) / abar(0)],
    0,
    1e-5,
    "cosine alphas_cumprod",
  );
  equal(Math.fround(cos.betas[999]!), Math.fround(0.999));
});

Deno.test("Karras sigmas for 25 steps match the reference sequence", () => {
  const s = karrasSigmas(25, sd.sigmaMin, sd.sigmaMax);
  assertClose(s.slice(0, 4), [14.6147, 12.2830, 10.2778, 8.5600], 1e-4, 0, "first four");
  assertClose(s.slice(21), [0.0922609, 0.06416, 0.04374, 0.029168], 1e-5, 0, "last four");
  const d = createSampler("dpmpp_2m_karras", 25);
  assertClose(d.sigmas, [...s, 0], 1e-12, 0, "sampler sigmas end in 0");
});

Deno.test("Karras timesteps interpolate in log-sigma between training sigmas", () => {
  const d = createSampler("dpmpp_2m_karras", 25);
  const want = [
    999.0,
    969.7611,
    938.4489,
    904.7793,
    868.4157,
    828.9613,
    785.954,
    738.8709,
    687.1533,
    630.2722,
    567.8687,
    499.9994,
    427.4898,
    352.2909,
    277.5957,
    207.4619,
    145.939,
    96.0301,
    58.8915,
    33.6294,
    17.8585,
    8.7409,
    3.7992,
    1.2795,
    0.0,
  ];
  assertClose(d.timesteps, want, 2e-3, 0, "timesteps");
  // tToSigma inverts sigmaToT
  for (const s of d.sigmas.slice(0, 25)) assertClose([sd.tToSigma(sd.sigmaToT(s))], [s], 0, 1e-12);
  // diffusers' DPMSolverMultistepScheduler rounds them
  const r = createSampler("dpmpp_2m_karras", 25, { roundTimesteps: true });
  deepEqual([...r.timesteps.slice(0, 3)], [999, 970, 938]);
});

const LISTS: Record<string, number[]> = {
  "ddim linspace": [
    999,
    957,
    916,
    874,
    832,
    791,
    749,
    708,
    666,
    624,
    583,
    541,
    500,
    458,
    416,
    375,
    333,
    291,
    250,
    208,
    166,
    125,
    83,
    42,
    0,
  ],
  "ddim leading": Array.from({ length: 25 }, (_, i) => 961 - 40 * i),
  "ddim trailing": Array.from({ length: 25 }, (_, i) => 999 - 40 * i),
  "euler linspace": Array.from({ length: 25 }, (_, i) => 999 - 41.625 * i),
  "euler leading": Array.from({ length: 25 }, (_, i) => 961 - 40 * i),
  "euler trailing": Array.from({ length: 25 }, (_, i) => 999 - 40 * i),
  "dpmsolver linspace": [
    999,
    959,
    919,
    879,
    839,
    799,
    759,
    719,
    679,
    639,
    599,
    559,
    519,
    480,
    440,
    400,
    360,
    320,
    280,
    240,
    200,
    160,
    120,
    80,
    40,
  ],
  "dpmsolver leading": Array.from({ length: 25 }, (_, i) => 951 - 38 * i),
  "dpmsolver trailing": Array.from({ length: 25 }, (_, i) => 999 - 40 * i),
};
for (const [key, want] of Object.entries(LISTS)) {
  const [rule, spacing] = key.split(" ") as ["ddim" | "euler" | "dpmsolver", string];
  Deno.test(`spacedTimesteps() gives diffusers' 25-step ${rule} list for ${spacing}`, () => {
    deepEqual([...spacedTimesteps(25, { rule, spacing, stepsOffset: 1 })], want);
  });
}

Deno.test("each sampler visits its scheduler's 25 timesteps in each spacing", () => {
  const rules = {
    ddpm: "ddim",
    ddim: "ddim",
    euler: "euler",
    euler_a: "euler",
    dpmpp_2m: "dpmsolver",
  };
  for (const [name, rule] of Object.entries(rules)) {
    for (const spacing of ["linspace", "leading", "trailing"]) {
      const s = createSampler(name, 25, { spacing });
      deepEqual([...s.timesteps], LISTS[`${rule} ${spacing}`], `${name} ${spacing}`);
      equal(s.sigmas.length, 26);
    }
  }
  // Euler's sigmas interpolate linearly in sigma at fractional timesteps (np.interp)
  const e = createSampler("euler", 25);
  assertClose(e.sigmas.slice(0, 4), [14.61464882, 11.43594337, 9.07681012, 7.30199581], 0, 1e-6);
  equal(e.sigmas[25], 0);
  // init_noise_sigma: sigma_max for linspace / trailing, sqrt(sigma_max^2 + 1) for leading
  assertClose([e.initNoiseSigma], [e.sigmas[0]!], 0, 0);
  const lead = createSampler("euler", 25, { spacing: "leading" });
  assertClose([lead.initNoiseSigma], [Math.hypot(lead.sigmas[0]!, 1)], 0, 1e-15);
  // DDIM's final step lands on alphas_cumprod[0] (set_alpha_to_one false in SD's config)
  assertClose([createSampler("ddim", 25).sigmas[25]!], [sd.sigmaMin], 0, 1e-6);
});

Deno.test("roundHalfEven() rounds like numpy", () => {
  deepEqual([0.5, 1.5, 2.5, 166.5, 499.5, -2.5, 2.4, 2.6].map(roundHalfEven), [
    0,
    2,
    2,
    166,
    500,
    -2,
    2,
    3,
  ]);
});

Deno.test("unknown spacing and schedule names list the valid ones; bad step counts throw", () => {
  throws(
    () => spacedTimesteps(25, { spacing: "uniform" }),
    (e: Error) => e instanceof ArgumentError && /"leading", "linspace", "trailing"/.test(e.message),
  );
  throws(
    () => createSchedule({ betaSchedule: "cosine" }),
    (e: Error) => /"scaled_linear", "linear", "squaredcos_cap_v2"/.test(e.message),
  );
  for (const n of [0, -3, 2.5, 1001]) {
    throws(
      () => spacedTimesteps(n),
      (e: Error) => /from 1 to the 1000 training timesteps/.test(e.message),
    );
  }
  // leading spacing with steps_offset 1 would visit t = 1000 at 1000 steps (diffusers indexes
  // out of range there); we say what to change
  throws(() => spacedTimesteps(1000), (e: Error) => /timestep 1000.*stepsOffset 0/.test(e.message));
  equal(spacedTimesteps(1000, { stepsOffset: 0 })[999], 0);
});

Deno.test("addNoise() and velocity() use each sample's own timestep", async () => {
  const ts = [0, 417, 999];
  const x0 = randn([3, 2, 5, 3], { generator: new Generator(1) });
  const n = randn([3, 2, 5, 3], { generator: new Generator(2) });
  const [xa, na] = [await x0.toArray(), await n.toArray()];
  const got = await addNoise(x0, n, ts).toArray();
  const v = await velocity(x0, n, ts).toArray();
  const per = 30;
  ts.forEach((t, b) => {
    const ab = sd.alphasCumprod[t]!;
    const sl = (a: Float32Array) => a.subarray(b * per, (b + 1) * per);
    assertClose(sl(got), addNoiseRef(sl(xa), sl(na), ab), 1e-6, 1e-5, `x_t at t=${t}`);
    const want = Float64Array.from(
      { length: per },
      (_, i) => Math.sqrt(ab) * sl(na)[i]! - Math.sqrt(1 - ab) * sl(xa)[i]!,
    );
    assertClose(sl(v), want, 1e-6, 1e-5, `v at t=${t}`);
  });
  equal(trainingTarget(x0, n, ts), n, "epsilon target is the noise itself");
  assertClose(await trainingTarget(x0, n, ts, { prediction: "v_prediction" }).toArray(), v, 0, 0);
  throws(() => addNoise(x0, n, [1, 2]), ShapeError);
  throws(() => addNoise(x0, n, [1, 2, 1000]), /outside this schedule/);
});

Deno.test("minSnrWeights() gives min(SNR, gamma)/SNR (epsilon) and /(SNR + 1) (v)", () => {
  const ts = [0, 200, 500, 999];
  const r = snr(ts);
  assertClose(r, ts.map((t) => sd.alphasCumprod[t]! / (1 - sd.alphasCumprod[t]!)), 0, 1e-12);
  assertClose(minSnrWeights(ts, { gamma: 5 }), [...r].map((s) => Math.min(s, 5) / s), 0, 1e-12);
  assertClose(
    minSnrWeights(ts, { gamma: 5, prediction: "v_prediction" }),
    [...r].map((s) => Math.min(s, 5) / (s + 1)),
    0,
    1e-12,
  );
  // low-noise steps are down-weighted, high-noise steps keep weight 1 (epsilon)
  ok(minSnrWeights([0])[0]! < 0.01);
  equal(minSnrWeights([999])[0], 1);
});

Deno.test("trainingNoise() adds offset * randn(B, C, 1, 1) from the same stream", async () => {
  const shape = [2, 3, 4, 5];
  const got = await trainingNoise(shape, { generator: new Generator(9), offset: 0.1 }).toArray();
  const g = new Generator(9);
  const base = await randn(shape, { generator: g }).toArray();
  const m = await randn([2, 3, 1, 1], { generator: g }).toArray();
  const want = Float64Array.from(base, (v, i) => v + 0.1 * m[Math.floor(i / 20)]!);
  assertClose(got, want, 1e-6, 0, "offset noise");
});

Deno.test("randomTimesteps() draws the GPU RNG's uniforms, reproducibly, in range", async () => {
  const a = randomTimesteps(8, new Generator(5));
  deepEqual(randomTimesteps(8, new Generator(5)), a);
  // the same counters drawn by the GPU kernel give the same timesteps
  const u = await rand([8], { generator: new Generator(5) }).toArray();
  deepEqual(a, [...u].map((v) => Math.floor(v * 1000)));
  const many = randomTimesteps(20000, new Generator(6), { min: 100, max: 900 });
  ok(many.every((t) => Number.isInteger(t) && t >= 100 && t < 900));
  const meanT = many.reduce((s, t) => s + t, 0) / many.length;
  ok(Math.abs(meanT - 499.5) < 5, `mean ${meanT}`);
  throws(() => randomTimesteps(2, new Generator(1), { min: 5, max: 5 }), ArgumentError);
});

Deno.test("trainingBatch() is reproducible from a seed and consistent with its parts", async () => {
  const run = () =>
    scope(async () => {
      const g = new Generator(11);
      const x0 = randn([2, 4, 6, 6], { generator: g });
      const b = trainingBatch(x0, g, {
        minSnrGamma: 5,
        noiseOffset: 0.05,
        prediction: "v_prediction",
      });
      const want = await addNoise(x0, b.noise, b.timesteps).toArray();
      assertClose(await b.noisy.toArray(), want, 0, 0, "noisy");
      return {
        ts: b.timesteps,
        w: [...b.weights],
        t: [...await b.target.toArray()],
      };
    });
  const a = await run(), b = await run();
  deepEqual(a, b);
  assertClose(a.w, minSnrWeights(a.ts, { gamma: 5, prediction: "v_prediction" }), 0, 0);
});

Deno.test("lincomb() matches the reference and finite differences for three terms", () =>
  checkOp({
    shapes: [[3, 5], [3, 5], [3, 5]],
    gpu: (a, b, c) => lincomb([{ x: a, c: 0.5 }, { x: b, c: -2 }, { x: c!, c: 3 }]),
    ref: (a, b, c) => lincombRef([{ x: a, c: 0.5 }, { x: b!, c: -2 }, { x: c!, c: 3 }], 15),
  }));

Deno.test("lincomb() reads offsets into a larger tensor, with gradients placed there", () =>
  checkOp({
    shapes: [[2, 3, 7], [3, 7]],
    gpu: (a, b) =>
      lincomb([{ x: a, c: 2, offset: 21 }, { x: a, c: -1 }, { x: b!, c: 0.25 }], { shape: [3, 7] }),
    ref: (a, b) =>
      lincombRef([{ x: a, c: 2, offset: 21 }, { x: a, c: -1 }, { x: b!, c: 0.25 }], 21),
  }));

Deno.test("lincomb() clips and rejects bad terms", async () => {
  const x = tensor([-3, -0.5, 0.5, 3], [4]);
  deepEqual([...await lincomb([{ x, c: 1 }], { clip: [-1, 1] }).toArray()], [-1, -0.5, 0.5, 1]);
  throws(() => lincomb([{ x, c: 1, offset: 1 }]), ShapeError);
  throws(() => lincomb([1, 2, 3, 4, 5].map(() => ({ x, c: 1 }))), ArgumentError);
});

Deno.test("catBatch() matches the reference and finite differences for batch 1 and 2", () =>
  checkOp({
    shapes: [[1, 3, 5], [2, 3, 5]],
    gpu: (a, b) => catBatch(a, b!, 1, 0.5),
    ref: (a, b) => Float64Array.from([...a, ...b!.map((v) => 0.5 * v)]),
  }));

Deno.test("markNonFinite() records the first step with NaN or infinity", async () => {
  const flag = nonFiniteFlag();
  equal(await firstNonFiniteStep(flag), -1);
  markNonFinite(tensor([1, 2, 3], [3]), flag, 0);
  markNonFinite(tensor([1, Infinity, 3], [3]), flag, 1);
  markNonFinite(tensor([NaN, 2, 3], [3]), flag, 2);
  equal(await firstNonFiniteStep(flag), 1);
  equal(nonFiniteRef([1, Infinity, NaN]), 1);
  equal(nonFiniteRef([1, 2]), -1);
});
