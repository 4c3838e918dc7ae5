// `mod.ts sample` with the k-diffusion samplers: an AUTOMATIC1111 label and a --schedule run end
// to end on a tiny random model folder; a bad schedule or sampler is a usage error listing the
// valid names.
import { deepEqual, equal, notDeepEqual, ok } from "node:assert/strict";
import { decodeImage, pngText } from "../src/cli/_image_read.ts";
import "./_helpers.ts"; // acquires the GPU device
import { runCli as run, writeTinyModel } from "./_cli_fixtures.ts";

Deno.test("mod.ts sample takes A1111 sampler labels and ComfyUI schedules", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeTinyModel(`${dir}/model`, 9);
    const args = (out: string, ...extra: string[]) => [
      "sample",
      "--model",
      `${dir}/model`,
      "--prompt",
      "a cat",
      "--steps",
      "3",
      "--width",
      "16",
      "--height",
      "16",
      "--out",
      `${dir}/${out}`,
      ...extra,
    ];
    const a = await run(args("a.png", "--sampler", "DPM++ 2M SDE Karras"));
    equal(a.code, 0, a.stderr);
    ok(a.stderr.includes("3/3"), a.stderr);
    const b = await run(args("b.png", "--sampler", "dpmpp_2m_sde", "--schedule", "karras"));
    equal(b.code, 0, b.stderr);
    // the same sampler, schedule and seed: the same pixels (the parameters name them differently)
    const px = async (f: string) => (await decodeImage(await Deno.readFile(`${dir}/${f}`))).rgb;
    deepEqual(await px("a.png"), await px("b.png"));
    const c = await run(args("c.png", "--sampler", "dpmpp_2m_sde", "--schedule", "beta"));
    equal(c.code, 0, c.stderr);
    notDeepEqual(await px("a.png"), await px("c.png"));
    const bad = await run(args("d.png", "--schedule", "karas"));
    equal(bad.code, 2);
    ok(bad.stderr.includes("karras") && bad.stderr.includes("sgm_uniform"), bad.stderr);
    const badSampler = await run(args("d.png", "--sampler", "DPM++ 9M"));
    equal(badSampler.code, 2);
    ok(badSampler.stderr.includes("DPM++ 2M SDE Karras"), badSampler.stderr);
    // A1111 prompt syntax: an unclosed bracket is read leniently with a warning; a prompt longer
    // than the tiny encoder's 6-token chunks is encoded in two chunks and still samples
    const w = await run(args("w.png", "--prompt", "a (photo of a cat", "--negative", "dog"));
    equal(w.code, 0, w.stderr);
    ok(w.stderr.includes("warning: Prompt: 1 unclosed bracket"), w.stderr);
    const long = await run(args("l.png", "--prompt", "a photo of a cat a photo of a (dog:1.3)"));
    equal(long.code, 0, long.stderr);
    // batches: image k uses seed + k (A1111), each written numbered, --out holds the grid
    const g = await run(args("g.png", "--batch-size", "2", "--n-iter", "2", "--seed", "10"));
    equal(g.code, 0, g.stderr);
    const grid = await decodeImage(await Deno.readFile(`${dir}/g.png`));
    equal(`${grid.width}x${grid.height}`, "32x32");
    const one = await run(args("one.png", "--seed", "11"));
    equal(one.code, 0, one.stderr);
    const img1 = await decodeImage(await Deno.readFile(`${dir}/g-00001.png`));
    deepEqual(img1.rgb, (await decodeImage(await Deno.readFile(`${dir}/one.png`))).rgb);
    // image 1 sits top right in the 2x2 grid
    deepEqual(grid.rgb.subarray(3 * 16, 3 * 32), img1.rgb.subarray(0, 3 * 16));
    ok(
      (await pngText(await Deno.readFile(`${dir}/g-00003.png`))).get("parameters")!.includes(
        "Seed: 13",
      ),
    );
    // clip skip 2: another conditioning, recorded as A1111 records it, and re-run from the image
    const cs = await run(args("cs.png", "--seed", "11", "--clip-skip", "2"));
    equal(cs.code, 0, cs.stderr);
    notDeepEqual(await px("cs.png"), await px("one.png"));
    ok(
      (await pngText(await Deno.readFile(`${dir}/cs.png`))).get("parameters")!.includes(
        "Clip skip: 2",
      ),
    );
    const again = await run([
      "sample",
      "--model",
      `${dir}/model`,
      "--from-image",
      `${dir}/cs.png`,
      "--out",
      `${dir}/cs2.png`,
    ]);
    equal(again.code, 0, again.stderr);
    deepEqual(await Deno.readFile(`${dir}/cs2.png`), await Deno.readFile(`${dir}/cs.png`));
    const help = await run(["sample", "--help"]);
    ok(help.stdout.includes("--schedule") && help.stdout.includes("uni_pc"), help.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
