// `mod.ts sample` img2img, inpainting and --from-image end to end on a tiny random model folder:
// strength 0 gives the VAE round trip of the input, 1 the text-to-image pixels; the parameters
// chunk re-runs to the same bytes; bad masks and strengths are clear errors.
import { deepEqual, equal, notDeepEqual, ok } from "node:assert/strict";
import { decodeImage, pngText } from "../src/cli/_image_read.ts";
import { encodeImage } from "../src/cli/_image.ts";
import "./_helpers.ts"; // acquires the GPU device
import { runCli as run, writeTinyModel } from "./_cli_fixtures.ts";

Deno.test("img2img, inpainting and --from-image through mod.ts sample", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeTinyModel(`${dir}/model`, 9);
    const base = ["sample", "--model", `${dir}/model`, "--prompt", "a cat", "--steps", "3"];
    const size = ["--width", "16", "--height", "16"];
    const pixels = async (f: string) => (await decodeImage(await Deno.readFile(`${dir}/${f}`))).rgb;
    // text-to-image, then the same run from its own parameters chunk: the same bytes
    let r = await run([
      ...base,
      ...size,
      "--sampler",
      "euler_a",
      "--seed",
      "4",
      "--out",
      `${dir}/t.png`,
    ]);
    equal(r.code, 0, r.stderr);
    const params = (await pngText(await Deno.readFile(`${dir}/t.png`))).get("parameters")!;
    ok(
      params.includes("Sampler: Euler a, Schedule type: Normal") && params.includes("Seed: 4"),
      params,
    );
    r = await run([
      "sample",
      "--model",
      `${dir}/model`,
      "--from-image",
      `${dir}/t.png`,
      "--out",
      `${dir}/r.png`,
    ]);
    equal(r.code, 0, r.stderr);
    deepEqual(await Deno.readFile(`${dir}/r.png`), await Deno.readFile(`${dir}/t.png`));
    // an explicit option overrides the image's
    r = await run([
      "sample",
      "--model",
      `${dir}/model`,
      "--from-image",
      `${dir}/t.png`,
      "--seed",
      "5",
      "--out",
      `${dir}/s.png`,
    ]);
    equal(r.code, 0, r.stderr);
    notDeepEqual(await pixels("s.png"), await pixels("t.png"));

    // img2img on a 16x16 gradient: its size is the default output size
    const rgb = Uint8Array.from({ length: 16 * 16 * 3 }, (_, i) => (i * 7) % 256);
    await Deno.writeFile(`${dir}/in.png`, await encodeImage({ width: 16, height: 16, rgb }, "png"));
    const i2i = (out: string, ...extra: string[]) =>
      run([
        ...base,
        "--seed",
        "4",
        "--sampler",
        "euler_a",
        "--init-image",
        `${dir}/in.png`,
        "--out",
        `${dir}/${out}`,
        ...extra,
      ]);
    r = await i2i("s1.png", "--strength", "1");
    equal(r.code, 0, r.stderr);
    // strength 1 ignores the image: the text-to-image pixels
    deepEqual(await pixels("s1.png"), await pixels("t.png"));
    r = await i2i("s0.png", "--strength", "0");
    equal(r.code, 0, r.stderr);
    const s0 = await pixels("s0.png");
    notDeepEqual(s0, await pixels("t.png"));
    ok(
      (await pngText(await Deno.readFile(`${dir}/s0.png`))).get("parameters")!.includes(
        "Denoising strength: 0",
      ),
    );
    // strength 0 is the VAE round trip of the input: the same with any prompt or seed
    r = await run([
      "sample",
      "--model",
      `${dir}/model`,
      "--prompt",
      "dog",
      "--seed",
      "9",
      "--steps",
      "3",
      "--init-image",
      `${dir}/in.png`,
      "--strength",
      "0",
      "--out",
      `${dir}/s0b.png`,
    ]);
    equal(r.code, 0, r.stderr);
    deepEqual(await pixels("s0b.png"), s0);
    // inpainting with a black mask keeps the image (up to the VAE round trip): strength 0.5
    // and strength 0 then decode the same latents
    const black = new Uint8Array(16 * 16 * 3);
    await Deno.writeFile(
      `${dir}/keep.png`,
      await encodeImage({ width: 16, height: 16, rgb: black }, "png"),
    );
    r = await i2i("k.png", "--strength", "0.5", "--mask", `${dir}/keep.png`);
    equal(r.code, 0, r.stderr);
    deepEqual(await pixels("k.png"), s0);

    // bad input
    await Deno.writeFile(
      `${dir}/small.png`,
      await encodeImage({ width: 8, height: 8, rgb: new Uint8Array(192) }, "png"),
    );
    r = await i2i("x.png", "--mask", `${dir}/small.png`);
    equal(r.code, 1);
    ok(r.stderr.includes("The mask is 8x8 but the init image is 16x16"), r.stderr);
    r = await i2i("x.png", "--strength", "1.5");
    equal(r.code, 2);
    ok(r.stderr.includes("--strength"), r.stderr);
    r = await run([...base, "--strength", "0.5", "--out", `${dir}/x.png`]);
    equal(r.code, 2);
    ok(r.stderr.includes("--strength needs --init-image"), r.stderr);
    r = await run([
      "sample",
      "--model",
      `${dir}/model`,
      "--from-image",
      `${dir}/in.png`,
      "--out",
      `${dir}/x.png`,
    ]);
    equal(r.code, 1);
    ok(r.stderr.includes("carries no generation parameters"), r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
