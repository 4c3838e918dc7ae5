import { equal, notDeepEqual, ok } from "node:assert/strict";
import { dropoutMask, Generator, normalRef, rand, randn, uniformRef } from "../mod.ts";
import { assertClose } from "./_helpers.ts";

Deno.test("rand() is bit-identical to the CPU reference of the counter hash", async () => {
  const g = new Generator(2 ** 40 + 12345);
  g.take(1000); // a non-zero offset
  const u = await rand([4099], { generator: g }).toArray();
  for (let i = 0; i < u.length; i++) {
    equal(u[i], uniformRef(2 ** 40 + 12345, 1000 + i), `element ${i}`);
  }
});

Deno.test("randn() matches the reference within the adapter's log/cos precision", async () => {
  const g = new Generator(7);
  const z = await randn([3001], { generator: g }).toArray();
  const want = Array.from(z, (_, i) => normalRef(7, 0, i));
  // f32 log/cos/sqrt: a few ulp of values up to ~5
  assertClose(z, want, 2e-5, 2e-5);
  let m = 0, v = 0;
  for (const x of z) m += x / z.length;
  for (const x of z) v += (x - m) ** 2 / z.length;
  ok(Math.abs(m) < 0.06 && Math.abs(v - 1) < 0.08, `mean ${m}, variance ${v}`);
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
