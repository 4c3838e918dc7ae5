// Sigma schedules with ComfyUI's names, AUTOMATIC1111's sampler labels, and the beta quantile.
// Golden numbers: torch 1.13 float32 with diffusers' alphas_cumprod (betas = linspace(sqrt 0.00085,
// sqrt 0.012, 1000, float32)^2, cumprod in float32) and k-diffusion's `t_to_sigma` / ComfyUI's
// schedulers written out in a scratch script (scipy for the beta quantile); printed to 7 digits.
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { ArgumentError } from "../src/ops/errors.ts";
import { createSchedule } from "../src/schedule/schedules.ts";
import { SIGMA_SCHEDULES, sigmaSchedule } from "../src/schedule/sigma_schedules.ts";
import { betaCdf, betaPpf } from "../src/schedule/beta_dist.ts";
import { K_SAMPLER_NAMES, kSampler, resolveSamplerLabel } from "../src/schedule/k_samplers.ts";

// Relative agreement to 1e-5: torch 1.13's vectorized float32 linspace rounds 272 of the 1000
// betas one ulp away from a correctly rounded linspace (ours), which moves the training sigmas by
// at most 8.7e-6 relative (measured over all 1000, worst at t = 3 where 1 - alphas_cumprod
// cancels); the 7-digit print adds 5e-7
const REL = 1e-5;
function close(a: number, b: number, what: string): void {
  ok(Math.abs(a - b) <= REL * Math.abs(b), `${what}: ${a} vs ${b}`);
}

const NORMAL_25 = [
  14.61464,
  11.4359,
  9.076784,
  7.301984,
  5.948901,
  4.903772,
  4.086082,
  3.438173,
  2.918308,
  2.495968,
  2.148593,
  1.859356,
  1.615581,
  1.407622,
  1.228068,
  1.071159,
  0.9323583,
  0.8080229,
  0.69515,
  0.5911418,
  0.4935522,
  0.3997021,
  0.3057762,
  0.2034857,
  0.02916754,
];

Deno.test("normal schedule: 25 steps equal k-diffusion's get_sigmas and end in 0", () => {
  const s = sigmaSchedule("normal", 25);
  equal(s.length, 26);
  NORMAL_25.forEach((v, i) => close(s[i]!, v, `sigma ${i}`));
  equal(s[25], 0);
});

Deno.test("every schedule's length, first and last sigmas match ComfyUI's formulas", () => {
  const sc = createSchedule();
  const smax = sc.sigmaMax, smin = sc.sigmaMin;
  close(smax, 14.614645, "sigma_max");
  close(smin, 0.029167533, "sigma_min");
  // [name, length, first, last nonzero] for 10 steps, from the scratch script
  const want: [string, number, number, number][] = [
    ["normal", 11, 14.61464, 0.02916754],
    ["karras", 11, smax, smin],
    ["exponential", 11, smax, smin],
    ["sgm_uniform", 11, 14.61464, 0.3437054],
    ["simple", 11, 14.61465, 0.3416744],
    ["ddim_uniform", 11, 8.390687, 0.04131448],
    ["beta", 11, 14.61465, 0.1990589],
  ];
  deepEqual(want.map((w) => w[0]), [...SIGMA_SCHEDULES]);
  for (const [name, len, first, last] of want) {
    const s = sigmaSchedule(name, 10);
    equal(s.length, len, name);
    close(s[0]!, first, `${name} first`);
    close(s[len - 2]!, last, `${name} last`);
    equal(s[len - 1], 0, `${name} ends in 0`);
    for (let i = 1; i < s.length; i++) ok(s[i]! < s[i - 1]!, `${name} decreasing at ${i}`);
  }
  // ddim_uniform at 30 steps: c = floor(1000 / 30) = 33, t = 1, 34, ..., 991: 31 levels and 0
  equal(sigmaSchedule("ddim_uniform", 30).length, 32);
  // karras: eq. 5 midpoint of a 3-step run is ((smax^(1/7) + smin^(1/7)) / 2)^7
  close(sigmaSchedule("karras", 3)[1]!, ((smax ** (1 / 7) + smin ** (1 / 7)) / 2) ** 7, "mid");
  // exponential: the geometric mean
  close(sigmaSchedule("exponential", 3)[1]!, Math.sqrt(smax * smin), "geometric mid");
});

Deno.test("the beta quantile matches scipy and inverts the CDF", () => {
  // scipy.stats.beta.ppf([0.1, 0.3, 0.9], 0.6, 0.6); bisection to 1e-17 and a continued fraction
  // accurate to ~1e-14, so 1e-10 is a loose bound
  const want = [0.03958440558878085, 0.23401700387523572, 0.9604155944112192];
  [0.1, 0.3, 0.9].forEach((p, i) => ok(Math.abs(betaPpf(p, 0.6, 0.6) - want[i]!) < 1e-10));
  for (const [a, b] of [[0.6, 0.6], [2, 5], [0.5, 3]] as const) {
    for (const p of [0.01, 0.5, 0.99]) ok(Math.abs(betaCdf(betaPpf(p, a, b), a, b) - p) < 1e-12);
  }
  // Beta(1, 1) is uniform
  ok(Math.abs(betaPpf(0.37, 1, 1) - 0.37) < 1e-12);
});

Deno.test("AUTOMATIC1111 labels resolve to a sampler and a schedule", () => {
  deepEqual(resolveSamplerLabel("DPM++ 2M Karras"), { sampler: "dpmpp_2m", schedule: "karras" });
  deepEqual(resolveSamplerLabel("DPM++ 2M"), { sampler: "dpmpp_2m", schedule: "normal" });
  deepEqual(resolveSamplerLabel("Euler a"), { sampler: "euler_ancestral", schedule: "normal" });
  deepEqual(resolveSamplerLabel("dpm++ sde karras"), { sampler: "dpmpp_sde", schedule: "karras" });
  deepEqual(resolveSamplerLabel("DPM++ 3M SDE Exponential"), {
    sampler: "dpmpp_3m_sde",
    schedule: "exponential",
  });
  deepEqual(resolveSamplerLabel("DPM2 a"), { sampler: "dpm_2_ancestral", schedule: "normal" });
  deepEqual(resolveSamplerLabel("lms"), { sampler: "lms", schedule: "normal" });
  equal(K_SAMPLER_NAMES.length, 15);
  for (const n of K_SAMPLER_NAMES) equal(typeof kSampler(n), "function");
});

Deno.test("unknown sampler or schedule names list the valid ones", () => {
  throws(() => sigmaSchedule("karas", 10), (e: Error) => {
    ok(e instanceof ArgumentError);
    ok(e.message.includes('"karras"') && e.message.includes('"ddim_uniform"'), e.message);
    return true;
  });
  throws(() => resolveSamplerLabel("DPM++ 4M"), (e: Error) => {
    ok(e instanceof ArgumentError);
    ok(e.message.includes("dpmpp_2m_sde") && e.message.includes("DPM++ 2M SDE"), e.message);
    return true;
  });
  throws(() => kSampler("Euler a"), ArgumentError);
  throws(() => sigmaSchedule("normal", 0), ArgumentError);
});
