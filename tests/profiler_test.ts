import { deepEqual, equal, ok } from "node:assert/strict";
import {
  AdamW,
  backward,
  chromeTrace,
  conv2d,
  deviceInfo,
  dispatchCount,
  formatProfile,
  Generator,
  matmul,
  mseLoss,
  profile,
  randn,
  reportProfile,
  scope,
  silu,
  startProfiling,
  sum,
  sync,
  type Tensor,
} from "../mod.ts";
import "./_helpers.ts";

// a tiny training step: forward (matmul, silu, loss), backward, AdamW
function stepper(): { step: () => void; w: Tensor; opt: AdamW } {
  const w = randn([24, 40], { std: 0.1, requiresGrad: true, generator: new Generator(3) });
  const opt = new AdamW([w], { lr: 1e-2, maxGradNorm: 1 });
  const step = () => {
    scope(() => backward(mseLoss(silu(matmul(randn([8, 24]), w)), randn([8, 40]))));
    opt.step();
    opt.zeroGrad();
  };
  return { step, w, opt };
}

// both timers on every machine (timestamp-query only where the adapter has the feature)
const timers = deviceInfo().timestamps ? ["timestamp-query", "cpu"] as const : ["cpu"] as const;
for (const timing of timers) {
  Deno.test(`profile() with ${timing} timing records every dispatch by kernel, op and phase`, async () => {
    const { step, w } = stepper();
    step(); // compile pipelines outside the profile
    await sync();
    const before = dispatchCount();
    const r = await profile(step, { timing });
    const issued = dispatchCount() - before;
    const kernels = r.records.filter((x) => x.command === "dispatch");
    equal(kernels.length, issued, "one record per dispatch issued inside fn");
    equal(r.source, timing);
    deepEqual(r.byPhase.map((p) => p.key).sort(), ["backward", "forward", "optimizer"]);
    for (const rec of r.records) ok(rec.endMs >= rec.startMs, `${rec.kernel} has a duration`);
    ok(r.totalMs > 0, "kernels took some time");
    // the forward matmul states its work: 2 M N K
    const mm = r.records.find((x) => x.op === "matmul" && x.phase === "forward" && x.flops > 0);
    equal(mm?.flops, 2 * 8 * 40 * 24);
    ok(r.byOp.some((o) => o.key === "adamw"), "the optimizer update is named");
    ok(r.byOp.some((o) => o.key === "silu"), "forward ops are named");
    const shares = r.byKernel.reduce((a, k) => a + k.share, 0);
    ok(Math.abs(shares - 1) < 1e-9, `kernel shares sum to 1 (got ${shares})`);
    ok(formatProfile(r).includes("| kernel | calls | total ms | share | rate |"));
    const trace = chromeTrace(r).traceEvents.filter((e) => e.ph === "X");
    equal(trace.length, r.records.length, "one trace event per dispatch");
    w.dispose();
  });
}

Deno.test("profiling off adds no dispatches and a profile only counts its own work", async () => {
  const { step, w } = stepper();
  step();
  await sync();
  let before = dispatchCount();
  step();
  const plain = dispatchCount() - before;
  before = dispatchCount();
  const r = await profile(step);
  equal(dispatchCount() - before, plain, "the same dispatches with the profiler on");
  equal(r.records.filter((x) => x.command === "dispatch").length, plain);
  const again = await profile(() => {});
  equal(again.records.length, 0, "a later empty profile sees nothing of earlier work");
  w.dispose();
});

Deno.test("the cpu timer times copy commands too, under the op that issued them", async () => {
  // 64 f32 columns: rows of 256 bytes, so the texture matmul copies both operands in
  using a = randn([64, 64], { generator: new Generator(5) });
  using b = randn([64, 64], { generator: new Generator(6) });
  matmul(a, b, { variant: "texture" }).dispose(); // compile outside the profile
  await sync();
  const r = await profile(() => matmul(a, b, { variant: "texture" }).dispose(), { timing: "cpu" });
  const copies = r.records.filter((x) => x.command === "copy");
  equal(copies.length, 2, "both operands copied into textures");
  for (const c of copies) {
    equal(c.kernel, "copy_to_texture");
    equal(c.op, "matmul");
    equal(c.bytes, 2 * 64 * 64 * 4, "read and written");
    ok(c.endMs > c.startMs, "a copy takes time");
  }
  ok(/\d+ dispatches and 2 copies/.test(formatProfile(r)), formatProfile(r).split("\n")[0]);
});

Deno.test("DENOISE_PROFILE=1 prints the table at exit and writes a Chrome trace", async () => {
  const dir = await Deno.makeTempDir();
  const script = `${dir}/run.ts`;
  const trace = `${dir}/trace.json`;
  await Deno.writeTextFile(
    script,
    `import { getDevice, randn, silu } from "${new URL("../mod.ts", import.meta.url).href}";
await getDevice();
silu(randn([512])).dispose();`,
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
    env: { DENOISE_PROFILE: "1", DENOISE_PROFILE_TRACE: trace },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  equal(out.code, 0, err);
  ok(/\| unary_silu <=\d+KiB \| 1 \|/.test(err), `the table names the silu kernel:\n${err}`);
  const events = JSON.parse(await Deno.readTextFile(trace)).traceEvents as { name: string }[];
  ok(events.some((e) => e.name === "unary_silu"), "the trace holds the silu dispatch");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the cpu timer's replays leave every tensor as an unprofiled run leaves it", async () => {
  // two identical models: one steps under the cpu timer (which replays every dispatch, the
  // in-place AdamW update included), the other without; the weights must stay bit-identical
  const a = stepper(), b = stepper();
  await b.w.toArray().then((v) => a.w.toArray().then((u) => deepEqual(u, v)));
  const seedA = new Generator(9), seedB = new Generator(9);
  const step = (s: ReturnType<typeof stepper>, g: Generator) => () => {
    scope(() =>
      backward(
        mseLoss(
          silu(matmul(randn([8, 24], { generator: g }), s.w)),
          randn([8, 40], { generator: g }),
        ),
      )
    );
    s.opt.step();
    s.opt.zeroGrad();
  };
  await profile(step(a, seedA), { timing: "cpu" });
  step(b, seedB)();
  deepEqual(await a.w.toArray(), await b.w.toArray());
  a.w.dispose();
  b.w.dispose();
});

Deno.test("a backward rule's dispatches count for its op, inner sums included", async () => {
  const x = randn([2, 3, 6, 6], { requiresGrad: true });
  const w = randn([4, 3, 3, 3], { requiresGrad: true }), b = randn([4], { requiresGrad: true });
  const r = await profile(() => scope(() => backward(sum(conv2d(x, w, b, { padding: 1 })))));
  const back = r.records.filter((q) => q.phase === "backward");
  const sums = back.filter((q) => q.kernel.startsWith("sum"));
  // the bias gradient always sums over the batch; the weight gradient too where it is a
  // per-sample product (the texture path folds the batch into one product instead)
  ok(sums.length >= 1, "the bias gradient reduces over the batch");
  for (const q of [...sums, ...back.filter((q) => q.flops > 0)]) {
    equal(q.op, "conv2d", `${q.kernel} in the backward pass belongs to conv2d`);
  }
  for (const t of [x, w, b]) t.dispose();
});

Deno.test("reportProfile() ends a started profile with a trace; the CLI takes --profile", async () => {
  const trace = await Deno.makeTempFile({ suffix: ".json" });
  startProfiling();
  silu(randn([300])).dispose();
  await reportProfile(trace);
  const events = JSON.parse(await Deno.readTextFile(trace)).traceEvents as { name: string }[];
  ok(events.some((e) => e.name === "unary_silu"), "the trace holds the silu dispatch");
  await Deno.remove(trace);
  // in a child process (main() releases the GPU device); sample refuses options it does not know
  const cli = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../mod.ts", import.meta.url).pathname,
      "sample",
      "--help",
      "--profile",
    ],
    cwd: await Deno.makeTempDir(), // where a trace would go
    stdout: "null",
    stderr: "piped",
  }).output();
  equal(cli.code, 0, `--profile is a known option: ${new TextDecoder().decode(cli.stderr)}`);
});
