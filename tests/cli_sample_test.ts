// `mod.ts sample` end to end on a tiny random model folder the test writes: a valid JPEG of the
// requested size, the same bytes for the same seed, and a help text naming every option.
import { deepEqual, equal, notDeepEqual, ok } from "node:assert/strict";
import jpeg from "jpeg-js";
import "./_helpers.ts"; // acquires the GPU device
import { runCli as run, writeTinyModel } from "./_cli_fixtures.ts";

Deno.test("mod.ts sample --help lists every option", async () => {
  const r = await run(["sample", "--help"]);
  equal(r.code, 0);
  for (
    const o of [
      "--model",
      "--prompt",
      "--negative",
      "--steps",
      "--cfg",
      "--sampler",
      "--seed",
      "--width",
      "--height",
      "--out",
      "--tokenizer",
      "dpmpp_2m_karras",
    ]
  ) ok(r.stdout.includes(o), o);
  // --model defaults to the bundled mini model; --prompt has no default
  const bad = await run(["sample", "--steps", "2"]);
  equal(bad.code, 2);
  ok(bad.stderr.includes("--prompt"));
});

Deno.test("mod.ts sample writes a JPEG of the requested size, the same bytes for a seed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeTinyModel(`${dir}/model`, 9);
    const args = (seed: number, out: string) => [
      "sample",
      "--model",
      `${dir}/model`,
      "--prompt",
      "a photo of a cat",
      "--negative",
      "blurry",
      "--steps",
      "3",
      "--cfg",
      "7",
      "--sampler",
      "dpmpp_2m_karras",
      "--seed",
      String(seed),
      "--width",
      "24",
      "--height",
      "16",
      "--out",
      `${dir}/${out}`,
    ];
    const a = await run(args(1, "a.jpg"));
    equal(a.code, 0, a.stderr);
    ok(a.stderr.includes("3/3") && a.stderr.includes("it/s"), a.stderr);
    const b = await run(args(1, "b.jpg"));
    equal(b.code, 0, b.stderr);
    const c = await run(args(2, "c.jpg"));
    equal(c.code, 0, c.stderr);
    const [ja, jb, jc] = await Promise.all(
      ["a", "b", "c"].map((n) => Deno.readFile(`${dir}/${n}.jpg`)),
    );
    deepEqual([ja![0], ja![1]], [0xff, 0xd8]); // SOI
    deepEqual([ja!.at(-2), ja!.at(-1)], [0xff, 0xd9]); // EOI
    const img = jpeg.decode(ja!, { useTArray: true });
    equal(img.width, 24);
    equal(img.height, 16);
    deepEqual(ja, jb);
    notDeepEqual(ja, jc);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
