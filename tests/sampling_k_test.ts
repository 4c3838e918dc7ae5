// The k-diffusion samplers on an analytic denoiser. For data x0 ~ N(mu, s^2) per element and
// x = x0 + sigma n, the exact denoiser is D(x, sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu), and
// the probability-flow ODE dx/dsigma = (x - D) / sigma has the solution
//   x(sigma) = mu + (x(sigma_max) - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_max^2),
// so every deterministic sampler's end point can be checked exactly, and every stochastic one
// (ancestral / SDE with eta 1) must end with samples distributed as N(mu, s^2).
import { deepEqual, equal, notDeepEqual, ok, rejects } from "node:assert/strict";
import {
  affine,
  ArgumentError,
  Generator,
  randn,
  sample,
  type SampleOptions,
  type Tensor,
  tensor,
} from "../mod.ts";
import { createSchedule } from "../src/schedule/schedules.ts";
import { karrasSigmas } from "../src/schedule/karras.ts";
import { sigmaSchedule } from "../src/schedule/sigma_schedules.ts";
import { K_SAMPLER_NAMES, kSampler, STOCHASTIC_K_SAMPLERS } from "../src/schedule/k_samplers.ts";
import type { NoiseSource, SigmaDenoiser } from "../src/schedule/k/k_sampler.ts";
import { lmsCoefficient } from "../src/schedule/k/lms.ts";
import "./_helpers.ts"; // acquires the device

const MU = 0.3, S = 0.5;
const gaussian: SigmaDenoiser = (x, sigma) => {
  const k = S * S / (S * S + sigma * sigma);
  return affine(x, k, MU * (1 - k));
};

function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e += Math.abs(a[i]! - b[i]!);
  return e / a.length;
}

async function run(
  name: string,
  sigmas: Float64Array,
  noise: Tensor,
  options: Parameters<ReturnType<typeof kSampler>>[3] = {},
): Promise<Float32Array> {
  using x = affine(noise, sigmas[0]!, 0);
  using out = await kSampler(name)(gaussian, x, sigmas, options);
  return await out.toArray();
}

/** Mean absolute error against the exact ODE solution at the last nonzero sigma. */
async function odeError(name: string, steps: number): Promise<number> {
  const sigmas = sigmaSchedule("karras", steps);
  using noise = randn([1, 1, 16, 16], { generator: new Generator(5) });
  const n = await noise.toArray();
  let state: ArrayLike<number> = [];
  // eta 0 turns the ancestral / SDE samplers into ODE solvers
  await run(name, sigmas, noise, {
    eta: 0,
    onStep: async (info) => {
      if (info.step === steps - 2) state = await info.x.toArray();
    },
  });
  // the step to sigma 0 is a fixed first-order jump whatever the step count, so the order is
  // measured before it
  const last = sigmas[steps - 1]!, first = sigmas[0]!;
  const r = Math.sqrt(S * S + last * last) / Math.sqrt(S * S + first * first);
  return meanAbsDiff(state, Float64Array.from(n, (v) => MU + (v * first - MU) * r));
}

// Theory: Euler, DDIM, Euler a (eta 0 = Euler) first order; Heun, DPM2 (a), DPM++ 2S a / SDE /
// 2M / 2M SDE second order. DPM++ 3M SDE is third order per step but starts with a first- and a
// second-order step, whose local errors cap the global order at 2 (k-diffusion's own
// sample_dpmpp_3m_sde in float64 measures 1.96 on this problem). LMS (order 4) and UniPC (3, plus
// its corrector) start at lower order too but at high sigma, where the solution is nearly linear
// in sigma: at least 3. DDPM and LCM are stochastic by construction and have no ODE form.
const ORDERS: Record<string, number> = {
  euler: 1,
  ddim: 1,
  euler_ancestral: 1,
  heun: 2,
  dpm_2: 2,
  dpm_2_ancestral: 2,
  dpmpp_2s_ancestral: 2,
  dpmpp_sde: 2,
  dpmpp_2m: 2,
  dpmpp_2m_sde: 2,
  dpmpp_3m_sde: 2,
  lms: 3,
  uni_pc: 3,
};

Deno.test("each deterministic sampler converges at its theoretical order", async () => {
  const lines: string[] = [];
  for (const [name, order] of Object.entries(ORDERS)) {
    const e1 = await odeError(name, 16), e2 = await odeError(name, 32);
    const measured = Math.log2(e1 / e2);
    lines.push(
      `${name}: ${e1.toExponential(2)} -> ${e2.toExponential(2)} (order ${measured.toFixed(2)})`,
    );
    // an order-p method divides its error by ~2^p when the steps double; 16 -> 32 Karras steps
    // are asymptotic for all of these (measured orders 1.01, 2.03..2.16, 1.96, 3.41, 4.5), and
    // 0.3 below p still fails a method of the next lower order
    ok(measured > order - 0.3, `${name}: measured order ${measured}, expected ${order}`);
    if (order === 1) ok(measured < 1.3, `${name}: order ${measured} is too high for first order`);
  }
  console.log(lines.join("\n"));
});

// k-diffusion's sampling.py (crowsonkb/k-diffusion, HEAD of the fetched mirror) run in float64 in
// a scratch folder with torch 1.13: the Gaussian denoiser above, 10 Karras steps between our
// schedule's sigma_min and sigma_max, x_T = sigma_max sin(0.37 j + 0.1) 1.5 (16 elements), and
// a noise_sampler whose c-th call returns sin(0.9 j + 1.3 c + 0.5) 1.4; the first 4 values of
// the result to 6 decimals
const K_DIFFUSION: Record<string, number[]> = {
  euler: [0.353533, 0.572922, 0.754221, 0.872892],
  euler_ancestral: [0.423461, 0.481064, 0.408589, 0.26553],
  heun: [0.36898, 0.651675, 0.885288, 1.038203],
  dpm_2: [0.367024, 0.641699, 0.868686, 1.017263],
  dpm_2_ancestral: [0.29777, 0.493215, 0.560502, 0.460794],
  lms: [0.360681, 0.609361, 0.814866, 0.949382],
  dpmpp_2s_ancestral: [0.371886, 0.488781, 0.474168, 0.3467],
  dpmpp_sde: [0.333217, 0.2964, 0.269256, 0.276972],
  dpmpp_2m: [0.367902, 0.646175, 0.876136, 1.02666],
  dpmpp_2m_sde: [0.606411, 0.676715, 0.468876, 0.14483],
  dpmpp_3m_sde: [0.998414, 0.85181, 0.294555, -0.246985],
};

Deno.test("the samplers reproduce k-diffusion's trajectories given the same noise", async () => {
  const N = 16, sch = createSchedule();
  const sigmas = karrasSigmas(10, sch.sigmaMin, sch.sigmaMax);
  const all = new Float64Array(11);
  all.set(sigmas);
  using xT = tensor(Array.from({ length: N }, (_, j) => Math.sin(0.37 * j + 0.1) * 1.5), [1, N]);
  for (const [name, want] of Object.entries(K_DIFFUSION)) {
    let c = 0;
    const noise: NoiseSource = ({ shape }) => {
      const z = Array.from({ length: N }, (_, j) => Math.sin(0.9 * j + 1.3 * c + 0.5) * 1.4);
      c++;
      return tensor(z, shape);
    };
    const got = await run(name, all, xT, { noise });
    // float32 on the GPU against float64: 10 steps of O(1) values, each lincomb rounding at
    // 6e-8 relative and sigma_max = 14.6 magnifying the first steps' rounding: 2e-5 absolute
    for (let j = 0; j < 4; j++) {
      ok(Math.abs(got[j]! - want[j]!) < 2e-5, `${name}[${j}]: ${got[j]} vs k-diffusion ${want[j]}`);
    }
  }
});

Deno.test("LMS coefficients integrate the Lagrange basis exactly", () => {
  // order 1: the Euler step; order 2 on equal steps: Adams-Bashforth 2 (3/2, -1/2) times dt
  const t = [4, 3, 2, 1];
  ok(Math.abs(lmsCoefficient(1, t, 0, 0) - -1) < 1e-14);
  ok(Math.abs(lmsCoefficient(2, t, 1, 0) - -1.5) < 1e-14);
  ok(Math.abs(lmsCoefficient(2, t, 1, 1) - 0.5) < 1e-14);
  // AB3 on equal steps: (23, -16, 5) / 12 times dt = -1
  ok(Math.abs(lmsCoefficient(3, t, 2, 0) + 23 / 12) < 1e-14);
  ok(Math.abs(lmsCoefficient(3, t, 2, 2) + 5 / 12) < 1e-14);
});

/** A noise source whose draw depends only on (step, substep). */
function replayable(seed: number): NoiseSource {
  return ({ step, substep, shape }) =>
    randn(shape, { generator: new Generator(seed * 1000 + step * 2 + substep) });
}

Deno.test("every stochastic sampler given the same noise source twice gives the same trajectory", async () => {
  const sigmas = sigmaSchedule("karras", 6);
  using noise = randn([1, 1, 8, 8], { generator: new Generator(9) });
  equal(STOCHASTIC_K_SAMPLERS.length, 8);
  for (const name of STOCHASTIC_K_SAMPLERS) {
    const traj = async (seed: number) => {
      const xs: number[][] = [];
      await run(name, sigmas, noise, {
        noise: replayable(seed),
        onStep: async ({ x }) => void xs.push([...await x.toArray()]),
      });
      return xs;
    };
    const a = await traj(1), b = await traj(1), c = await traj(2);
    equal(a.length, 6);
    for (let i = 0; i < a.length; i++) {
      equal(meanAbsDiff(a[i]!, b[i]!), 0, `${name} step ${i}`);
    }
    // and the source is really used: other noise, another trajectory
    notDeepEqual(a[2], c[2], `${name} ignores its noise source`);
  }
});

function meanStd(x: Float32Array): { m: number; sd: number } {
  let m = 0;
  for (const v of x) m += v;
  m /= x.length;
  let v2 = 0;
  for (const v of x) v2 += (v - m) ** 2;
  return { m, sd: Math.sqrt(v2 / x.length) };
}

Deno.test("ancestral and SDE samplers land on the data distribution", async () => {
  // 16384 samples: the mean's standard error is 0.5 / 128 = 0.004 and the std's 0.5 / 181 =
  // 0.003. These samplers are weakly first order, so at 30 Karras steps Euler a's std is still
  // 0.444 (the exact variance recursion v' = (d/s + (1 - d/s) k)^2 v + u^2, k = S^2 / (S^2 + s^2),
  // evaluated in float64), 0.481 at 100; at 200 steps every one must be within 0.02 of S
  // (measured worst: 0.49) and the mean within 0.012 (3 standard errors). LCM is left out: with
  // an exact (not consistency-distilled) denoiser its re-noising shrinks the variance by design.
  using noise = randn([1, 4, 64, 64], { generator: new Generator(3) });
  const ea = meanStd(
    await run("euler_ancestral", sigmaSchedule("karras", 30), noise, {
      generator: new Generator(11),
    }),
  );
  ok(Math.abs(ea.sd - 0.44404) < 0.006, `Euler a std at 30 steps ${ea.sd}, theory 0.44404`);
  const sigmas = sigmaSchedule("karras", 200);
  const lines: string[] = [];
  for (const name of STOCHASTIC_K_SAMPLERS.filter((n) => n !== "lcm")) {
    const { m, sd } = meanStd(await run(name, sigmas, noise, { generator: new Generator(11) }));
    lines.push(`${name}: mean ${m.toFixed(4)} std ${sd.toFixed(4)}`);
    ok(Math.abs(m - MU) < 0.012, `${name} mean ${m}`);
    ok(Math.abs(sd - S) < 0.02, `${name} std ${sd}`);
  }
  console.log(lines.join("\n"));
});

Deno.test("bad sigmas and options are clear errors", async () => {
  using x = randn([1, 1, 4, 4]);
  for (const bad of [[1], [1, 2, 0], [1, NaN, 0], [1, -1]]) {
    await rejects(() => kSampler("euler")(gaussian, x, bad), ArgumentError);
  }
  await rejects(() => kSampler("euler_ancestral")(gaussian, x, [1, 0], { eta: -1 }), ArgumentError);
  await rejects(() => kSampler("lms")(gaussian, x, [1, 0], { order: 5 }), ArgumentError);
  equal(K_SAMPLER_NAMES.length, 15);
});

Deno.test("sample() runs k-diffusion samplers by ComfyUI name, A1111 label or sigma schedule", async () => {
  const sch = createSchedule();
  // the exact model as a U-Net sees it: epsilon for x / sqrt(sigma^2 + 1) at timestep t
  const epsModel = (xin: Tensor, t: number) => {
    const sigma = sch.tToSigma(t), c = Math.sqrt(sigma * sigma + 1), q = S * S + sigma * sigma;
    return affine(xin, c * sigma / q, -MU * sigma / q);
  };
  using noise = randn([1, 1, 8, 8], { generator: new Generator(4) });
  const viaSample = async (o: Partial<SampleOptions>) => {
    using x = await sample(epsModel, { noise, steps: 12, seed: 7, ...o });
    return await x.toArray();
  };
  const a = await viaSample({ sampler: "dpmpp_2m", sigmaSchedule: "karras" });
  const b = await viaSample({ sampler: "DPM++ 2M Karras" });
  deepEqual(a, b);
  // against the sampler called directly on the exact denoiser: the only difference is
  // t(sigma) -> sigma(t) round-tripping through the log-sigma table (~1e-7) and f32 rounding
  const direct = await run("dpmpp_2m", sigmaSchedule("karras", 12), noise);
  ok(meanAbsDiff(a, direct) < 1e-5, `${meanAbsDiff(a, direct)}`);
  // the stochastic ones take the seed: same seed, same result; another, another
  const e1 = await viaSample({ sampler: "Euler a", sigmaSchedule: "normal" });
  const e2 = await viaSample({ sampler: "euler_ancestral" });
  deepEqual(e1, e2);
  notDeepEqual(e1, await viaSample({ sampler: "euler_ancestral", seed: 8 }));
  // the diffusers-style names keep their tables unless a schedule is named
  notDeepEqual(
    await viaSample({ sampler: "dpmpp_2m" }),
    await viaSample({
      sampler: "dpmpp_2m",
      sigmaSchedule: "normal",
    }),
  );
  await rejects(() => viaSample({ sampler: "DPM++ 9M" }), (e: Error) => {
    ok(e instanceof ArgumentError && e.message.includes("dpmpp_2m_karras"), e.message);
    return true;
  });
  await rejects(() => viaSample({ sampler: "euler", sigmaSchedule: "karas" }), ArgumentError);
});
