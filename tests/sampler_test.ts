// Samplers on an analytic model. For data x0 ~ N(mu, s^2) per element and x = x0 + sigma n
// (sigma space), the exact denoiser is the posterior mean
//   D(x, sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu),
// so the exact noise prediction is eps = (x - D) / sigma = (x - mu) sigma / (s^2 + sigma^2).
// The probability-flow ODE dx/dsigma = (x - D) / sigma = (x - mu) sigma / (s^2 + sigma^2) has
// d log(x - mu) / dsigma = sigma / (s^2 + sigma^2) = d/dsigma log sqrt(s^2 + sigma^2), hence
//   x(sigma) = mu + (x(sigma_max) - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_max^2)
// from any start. A float64 model of Euler and DPM++ 2M on this problem (Karras sigmas, state
// at the last nonzero sigma) gives MAE 0.034 -> 0.017 (Euler) and 0.0058 -> 0.0013 (DPM++ 2M)
// from 20 to 40 steps.
import { deepEqual, equal, notDeepEqual, ok, rejects, throws } from "node:assert/strict";
import {
  affine,
  ArgumentError,
  copy,
  createSampler,
  createSchedule,
  type Denoiser,
  dispatchCount,
  EulerSampler,
  full,
  mul,
  NonFiniteError,
  type Prediction,
  randn,
  sample,
  type SampleOptions,
  type Sampler,
  ShapeError,
  type StepResult,
  type Tensor,
  tensor,
} from "../mod.ts";
import { Generator } from "../mod.ts";
import "./_helpers.ts"; // acquires the device

const schedule = createSchedule();
const MU = 0.3, S = 0.5;
const SHAPE = [1, 4, 128, 128]; // 65536 elements

/** The exact model of N(mu, s^2) data, fed `x / sqrt(sigma^2 + 1)` at timestep t. */
function gaussianModel(mu: number, s: number, prediction: Prediction = "epsilon"): Denoiser {
  return (xin, t) => {
    const sigma = schedule.tToSigma(t); // the model only knows t, like a U-Net
    const c = Math.sqrt(sigma * sigma + 1), q = s * s + sigma * sigma;
    // eps = (c x_in - mu) sigma / q
    const a = c * sigma / q, b = -mu * sigma / q;
    if (prediction === "epsilon") return affine(xin, a, b);
    // v = (eps - sigma D) / c, D = mu + (s^2 / q)(c x_in - mu)
    const k = s * s / q;
    return affine(xin, (a - sigma * k * c) / c, (b - sigma * mu * (1 - k)) / c);
  };
}

function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e += Math.abs(a[i]! - b[i]!);
  return e / a.length;
}

function stats(a: ArrayLike<number>): { mean: number; std: number } {
  let m = 0;
  for (let i = 0; i < a.length; i++) m += a[i]!;
  m /= a.length;
  let v = 0;
  for (let i = 0; i < a.length; i++) v += (a[i]! - m) ** 2;
  return { mean: m, std: Math.sqrt(v / a.length) };
}

/** Exact ODE solution at `sigma` from `start` at `sigmaStart`. */
function exact(start: ArrayLike<number>, sigmaStart: number, sigma: number): Float64Array {
  const r = Math.sqrt(S * S + sigma * sigma) / Math.sqrt(S * S + sigmaStart * sigmaStart);
  return Float64Array.from({ length: start.length }, (_, i) => MU + (start[i]! - MU) * r);
}

/** Runs a sigma-space sampler and returns its MAE at the last nonzero sigma. */
async function errorAtLastSigma(
  name: string,
  steps: number,
  prediction: Prediction = "epsilon",
): Promise<{ err: number; state: Float32Array }> {
  const noise = randn(SHAPE, { generator: new Generator(123) });
  const n = await noise.toArray();
  const s = createSampler(name, steps, { karras: true, prediction });
  let state: Float32Array | null = null;
  const x = await sample(gaussianModel(MU, S, prediction), {
    sampler: s,
    noise,
    onStep: async (info) => {
      if (info.step === steps - 2) state = await info.x.toArray();
    },
  });
  x.dispose();
  noise.dispose();
  s.dispose();
  const start = Float64Array.from(n, (v) => v * s.initNoiseSigma);
  const want = exact(start, s.sigmas[0]!, s.sigmas[steps - 1]!);
  return { err: meanAbsDiff(state!, want), state: state! };
}

Deno.test("DPM++ 2M Karras is second order and Euler first order on the exact Gaussian model", async () => {
  const e20 = (await errorAtLastSigma("euler", 20)).err;
  const e40 = (await errorAtLastSigma("euler", 40)).err;
  const d20 = (await errorAtLastSigma("dpmpp_2m", 20)).err;
  const d40 = (await errorAtLastSigma("dpmpp_2m", 40)).err;
  console.log(
    `MAE at the last nonzero sigma: Euler ${e20.toFixed(5)} -> ${e40.toFixed(5)} ` +
      `(x${(e20 / e40).toFixed(2)}), DPM++ 2M ${d20.toFixed(5)} -> ${d40.toFixed(5)} ` +
      `(x${(d20 / d40).toFixed(2)}); Euler/DPM++ at 40: x${(e40 / d40).toFixed(1)}`,
  );
  ok(d20 / d40 >= 3, `DPM++ 2M error ratio ${d20 / d40}`);
  ok(e20 / e40 > 1.7 && e20 / e40 < 2.3, `Euler error ratio ${e20 / e40}`);
  ok(e40 / d40 >= 8, `Euler / DPM++ at 40 steps ${e40 / d40}`);
  // and they land where the float64 model of the same algorithms does
  ok(Math.abs(e20 / 0.0337 - 1) < 0.1 && Math.abs(d40 / 0.00133 - 1) < 0.15, `${e20} ${d40}`);
});

Deno.test("v-prediction models sample the same path as epsilon models", async () => {
  for (const name of ["euler", "dpmpp_2m"]) {
    const a = await errorAtLastSigma(name, 20);
    const b = await errorAtLastSigma(name, 20, "v_prediction");
    ok(meanAbsDiff(a.state, b.state) < 1e-4, `${name}: ${meanAbsDiff(a.state, b.state)}`);
  }
});

Deno.test("DDIM (eta 0) converges to the exact ODE end point as steps grow", async () => {
  const noise = randn(SHAPE, { generator: new Generator(7) });
  const n = await noise.toArray();
  const ac = schedule.alphasCumprod;
  // DDIM works on x_vp = x / sqrt(1 + sigma^2); trailing spacing starts at t = 999 and its last
  // step lands on alphas_cumprod[0], i.e. sigma_min
  const start = Float64Array.from(n, (v) => v / Math.sqrt(ac[999]!));
  const want = exact(start, schedule.sigmaMax, schedule.sigmaMin);
  const errs: number[] = [];
  for (const steps of [25, 50, 100, 200]) {
    for (const prediction of ["epsilon", "v_prediction"] as const) {
      const x = await sample(gaussianModel(MU, S, prediction), {
        sampler: "ddim",
        steps,
        spacing: "trailing",
        prediction,
        noise,
      });
      const got = Float64Array.from(await x.toArray(), (v) => v / Math.sqrt(ac[0]!));
      x.dispose();
      if (prediction === "epsilon") errs.push(meanAbsDiff(got, want));
      else ok(Math.abs(meanAbsDiff(got, want) / errs.at(-1)! - 1) < 0.01, "v matches epsilon");
    }
  }
  console.log(`DDIM MAE at sigma_min, 25/50/100/200 steps: ${errs.map((e) => e.toFixed(5))}`);
  for (let i = 1; i < errs.length; i++) ok(errs[i]! < 0.6 * errs[i - 1]!, `${errs}`);
  ok(errs[3]! < 0.006, `${errs}`);
  noise.dispose();
});

Deno.test("DDPM with 1000 steps samples N(mu, s^2)", async () => {
  const x = await sample(gaussianModel(MU, S), {
    sampler: "ddpm",
    steps: 1000,
    spacing: "trailing",
    shape: SHAPE,
    seed: 3,
  });
  const { mean, std } = stats(await x.toArray());
  console.log(
    `DDPM 1000 steps: mean ${mean.toFixed(4)} (mu ${MU}), std ${std.toFixed(4)} (s ${S})`,
  );
  ok(Math.abs(mean - MU) < 0.01, `mean ${mean}`);
  ok(Math.abs(std / S - 1) < 0.03, `std ${std}`);
  x.dispose();
});

Deno.test("Euler ancestral samples N(mu, s^2) more closely with more steps", async () => {
  const out: { mean: number; std: number }[] = [];
  for (const steps of [50, 200]) {
    const x = await sample(gaussianModel(MU, S), {
      sampler: "euler_a",
      steps,
      karras: true,
      shape: SHAPE,
      seed: 4,
    });
    out.push(stats(await x.toArray()));
    x.dispose();
  }
  const [a, b] = out as [{ mean: number; std: number }, { mean: number; std: number }];
  console.log(
    `Euler a: 50 steps mean ${a.mean.toFixed(4)} std ${a.std.toFixed(4)}; ` +
      `200 steps mean ${b.mean.toFixed(4)} std ${b.std.toFixed(4)} (s ${S})`,
  );
  ok(Math.abs(a.mean - MU) < 0.01 && Math.abs(b.mean - MU) < 0.01);
  ok(Math.abs(b.std - S) < Math.abs(a.std - S), "200 steps closer than 50");
  ok(Math.abs(b.std / S - 1) < 0.03, `std ${b.std}`);
});

/** A sampler wrapper that records the (guided) model output of each step. */
class Recording extends EulerSampler {
  outputs: Float32Array[] = [];
  pending: Tensor[] = [];
  override step(out: Tensor, i: number, x: Tensor): StepResult {
    this.pending.push(copy(out));
    return super.step(out, i, x);
  }
  async read(): Promise<Float32Array[]> {
    for (const t of this.pending) this.outputs.push(await t.toArray());
    this.pending.forEach((t) => t.dispose());
    this.pending = [];
    return this.outputs;
  }
}

/** Two analytic models in one: `out = x * ctx + t / 1000` with ctx a per-sample factor. */
function twoModels(calls: { x: Float32Array; ctx: Float32Array | null; out: Tensor }[]): Denoiser {
  return async (x, t, ctx) => {
    const y = affine(mul(x, ctx!), 1, t / 1000);
    calls.push({ x: await x.toArray(), ctx: ctx ? await ctx.toArray() : null, out: copy(y) });
    return y;
  };
}

Deno.test("guidance scale 1 equals the conditional model and scale s gives u + s (c - u)", async () => {
  const shape = [2, 4, 6, 5];
  const cond = tensor([2, -1], [2, 1, 1, 1]);
  const uncond = tensor([0.5, 3], [2, 1, 1, 1]);
  const base: SampleOptions = { shape, steps: 3, seed: 8, context: cond };
  // scale 1: one call per step with the conditional context, the step sees its output exactly
  {
    const calls: { x: Float32Array; ctx: Float32Array | null; out: Tensor }[] = [];
    const rec = new Recording(3);
    (await sample(twoModels(calls), { ...base, sampler: rec, negativeContext: uncond })).dispose();
    equal(calls.length, 3);
    const outs = await rec.read();
    for (const [i, c] of calls.entries()) {
      deepEqual([...c.ctx!], [2, -1]);
      deepEqual(outs[i], await c.out.toArray());
    }
  }
  // scale 7.5, batched and unbatched
  const results: Float32Array[] = [];
  for (const batchGuidance of [true, false]) {
    const calls: { x: Float32Array; ctx: Float32Array | null; out: Tensor }[] = [];
    const rec = new Recording(3);
    const x = await sample(twoModels(calls), {
      ...base,
      sampler: rec,
      negativeContext: uncond,
      guidanceScale: 7.5,
      batchGuidance,
    });
    results.push(await x.toArray());
    const outs = await rec.read();
    equal(calls.length, batchGuidance ? 3 : 6);
    for (let i = 0; i < 3; i++) {
      let u: Float32Array, c: Float32Array;
      if (batchGuidance) {
        // one call on [uncond; cond]
        deepEqual([...calls[i]!.ctx!], [0.5, 3, 2, -1]);
        const o = await calls[i]!.out.toArray();
        [u, c] = [o.subarray(0, o.length / 2), o.subarray(o.length / 2)];
      } else {
        c = await calls[2 * i]!.out.toArray();
        u = await calls[2 * i + 1]!.out.toArray();
      }
      const got = outs[i]!;
      let worst = 0;
      for (let j = 0; j < got.length; j++) {
        const want = u[j]! + 7.5 * (c[j]! - u[j]!);
        worst = Math.max(worst, Math.abs(got[j]! - want) / (1 + Math.abs(want)));
      }
      ok(worst < 1e-6, `step ${i}: relative error ${worst}`);
    }
  }
  ok(meanAbsDiff(results[0]!, results[1]!) < 1e-5, "batched and unbatched guidance agree");
});

Deno.test("a seed reproduces samples exactly; another seed changes them", async () => {
  for (const name of ["euler_a", "ddpm", "ddim", "dpmpp_2m_karras"]) {
    const run = async (seed: number, extra: Partial<SampleOptions> = {}) => {
      const x = await sample(gaussianModel(MU, S), {
        sampler: name,
        steps: 8,
        shape: [1, 4, 16, 16],
        seed,
        eta: name === "ddim" ? 1 : 0,
        ...extra,
      });
      const a = await x.toArray();
      x.dispose();
      return a;
    };
    deepEqual(await run(1), await run(1), `${name}: same seed`);
    notDeepEqual(await run(1), await run(2), `${name}: different seeds`);
    if (name !== "dpmpp_2m_karras") {
      // the ancestral noise itself comes from the seed: same initial noise, other seed, other image
      const noise = randn([1, 4, 16, 16], { generator: new Generator(77) });
      notDeepEqual(await run(1, { noise }), await run(2, { noise }), `${name}: ancestral noise`);
      noise.dispose();
    }
  }
});

Deno.test("unknown sampler names list the valid ones; bad steps and options throw", () => {
  throws(() => createSampler("heun", 10), (e: Error) =>
    e instanceof ArgumentError &&
    /"ddpm", "ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras"/.test(e.message));
  for (const steps of [0, 1001, 1.5]) {
    throws(() => createSampler("euler", steps), /from 1 to the 1000 training timesteps/);
  }
  throws(
    () => createSampler("euler", 10, { spacing: "even" }),
    /"leading", "linspace", "trailing"/,
  );
  throws(() => createSampler("ddim", 10, { karras: true }), /Karras sigmas apply to/);
  throws(() => createSampler("euler", 10, { prediction: "x0" }), /"epsilon", "v_prediction"/);
  throws(() => createSampler("ddim", 10, { eta: -1 }), ArgumentError);
  const s = createSampler("euler", 10);
  throws(() => s.step(tensor([0], [1]), 10, tensor([0], [1])), /outside this 10-step euler run/);
});

Deno.test("sample() rejects guidance without a negative context and mismatched contexts", async () => {
  const model: Denoiser = (x) => affine(x, 0, 0);
  await rejects(sample(model, { shape: [1, 4], guidanceScale: 7 }), /needs a negativeContext/);
  await rejects(
    sample(model, {
      shape: [1, 4],
      guidanceScale: 7,
      context: full([1, 3], 1),
      negativeContext: full([1, 2], 1),
    }),
    ShapeError,
  );
  await rejects(sample(model, {}), /needs a shape/);
});

Deno.test("NaN in a model's output gives a clear error naming the first bad step", async () => {
  let calls = 0;
  const model: Denoiser = (x, t) => {
    calls++;
    return t < 500 ? full(x.shape, NaN) : affine(x, 0, 0);
  };
  const s = createSampler("euler", 10);
  const firstBad = [...s.timesteps].findIndex((t) => t < 500);
  await rejects(
    sample(model, { sampler: "euler", steps: 10, shape: [1, 4, 8, 8] }),
    (e: Error) =>
      e instanceof NonFiniteError &&
      e.message.includes(`at step ${firstBad + 1} of 10`) && e.message.includes("NaN"),
  );
  equal(calls, 10, "checked once, at the end");
  calls = 0;
  await rejects(
    sample(model, { sampler: "euler", steps: 10, shape: [1, 4, 8, 8], checkEvery: 2 }),
    NonFiniteError,
  );
  ok(calls < 10, `checkEvery 2 stopped after ${calls} calls`);
});

Deno.test("sample() leaves a caller's noise and sampler alive and frees the rest", async () => {
  const noise = randn([1, 4, 8, 8], { generator: new Generator(1) });
  const s: Sampler = createSampler("dpmpp_2m_karras", 5);
  const x = await sample((x) => affine(x, 0.1, 0), { sampler: s, noise });
  ok(!noise.disposed);
  equal(x.shape.join(), "1,4,8,8");
  s.dispose();
  x.dispose();
  noise.dispose();
});

Deno.test("a step's own work is a few GPU dispatches", async () => {
  // the model returns a view (no dispatch), so the count is the loop's own work
  // per 10 steps: scale input (sigma samplers), NaN mark, denoised, update, noise (ancestral;
  // euler_a draws none on its last step, to sigma 0)
  const want: Record<string, number> = { ddpm: 40, ddim: 30, euler: 40, euler_a: 49, dpmpp_2m: 40 };
  for (const [name, count] of Object.entries(want)) {
    const before = dispatchCount();
    const x = await sample((x) => x.view(), { sampler: name, steps: 10, shape: [1, 4, 8, 8] });
    x.dispose();
    // + once: the NaN flag fill, randn and the initial-noise scaling (ddpm adds noise at t = 1 too)
    const got = dispatchCount() - before;
    equal(got, count + 3, name);
  }
});
