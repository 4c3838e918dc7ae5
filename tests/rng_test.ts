import { equal, notDeepEqual, ok, throws } from "node:assert/strict";
import {
  dropoutMask,
  Generator,
  getDevice,
  normalRef,
  rand,
  randn,
  RowGenerators,
  uniformRef,
} from "../mod.ts";

await getDevice();

Deno.test("rand() is bit-identical to the CPU reference of the counter hash", async () => {
  const g = new Generator(2 ** 40 + 12345);
  g.take(1000); // a non-zero offset
  const u = await rand([4099], { generator: g }).toArray();
  for (let i = 0; i < u.length; i++) {
    equal(u[i], uniformRef(2 ** 40 + 12345, 1000 + i), `element ${i}`);
  }
});

Deno.test("randn() is bit-identical to the CPU reference (integer-only inverse CDF)", async () => {
  const g = new Generator(7);
  g.take(12345);
  const z = await randn([40001], { generator: g }).toArray();
  for (let i = 0; i < z.length; i++) equal(z[i], normalRef(7, 12345, i), `element ${i}`);
});

Deno.test("randn() is standard normal: moments and quantiles of 200k draws", async () => {
  const n = 200000;
  const z = await randn([n], { generator: new Generator(11) }).toArray();
  let m = 0, v = 0, k = 0;
  for (const x of z) m += x / n;
  for (const x of z) v += (x - m) ** 2 / n;
  for (const x of z) k += (x - m) ** 4 / n / (v * v);
  // standard errors at n = 200k: mean 0.0022, variance 0.0032, kurtosis 0.011; bounds are ~5 sigma
  ok(
    Math.abs(m) < 0.011 && Math.abs(v - 1) < 0.016 && Math.abs(k - 3) < 0.06,
    `mean ${m}, var ${v}, kurtosis ${k}`,
  );
  const sorted = Float64Array.from(z).sort();
  // quantiles of N(0, 1): P(Z < q) for q = -2.326, -1.645, 0, 1.645, 2.326 is 1%, 5%, 50%, 95%, 99%
  const qs: [number, number][] = [[0.01, -2.3263], [0.05, -1.6449], [0.5, 0], [0.95, 1.6449], [
    0.99,
    2.3263,
  ]];
  for (const [p, q] of qs) {
    const got = sorted[Math.floor(p * n)]!;
    ok(Math.abs(got - q) < 0.03, `quantile ${p}: ${got} vs ${q}`);
  }
  ok(-sorted[0]! > 4 && sorted[n - 1]! > 4, "both tails are reached");
});

Deno.test("the same seed gives the same numbers and another seed different ones", async () => {
  const a = await randn([64], { generator: new Generator(1) }).toArray();
  const b = await randn([64], { generator: new Generator(1) }).toArray();
  const c = await randn([64], { generator: new Generator(2) }).toArray();
  equal(a.join(), b.join());
  notDeepEqual([...a], [...c]);
});

Deno.test("dropoutMask() zeroes about p of the values and scales the rest by 1 / (1 - p)", async () => {
  const m = await dropoutMask([20000], 0.25, { generator: new Generator(3) }).toArray();
  const zeros = m.filter((x) => x === 0).length / m.length;
  ok(Math.abs(zeros - 0.25) < 0.015, `zero fraction ${zeros}`);
  ok(m.every((x) => x === 0 || Math.abs(x - 4 / 3) < 1e-6));
});

Deno.test("RowGenerators: row b of a batch draw is stream b's own draw, and each stream advances", async () => {
  const seeds = [3, 2 ** 40 + 1, 3];
  const streams = seeds.map((s) => new Generator(s));
  streams[2]!.take(77); // the same seed at another offset gives another row
  const z = await randn([3, 2, 5], { generator: new RowGenerators(streams) }).toArray();
  for (const [b, s] of seeds.entries()) {
    const start = b === 2 ? 77 : 0;
    for (let i = 0; i < 10; i++) equal(z[b * 10 + i], normalRef(s, start, i), `row ${b}, ${i}`);
    equal(streams[b]!.offset, start + 10, `stream ${b} offset`);
  }
  throws(
    () => randn([2, 4], { generator: new RowGenerators(streams) }),
    /has 2 rows but its generator has 3 streams; give one stream per batch row/,
  );
});
