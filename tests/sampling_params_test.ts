// AUTOMATIC1111 generation parameters: the infotext line format, a PNG "parameters" text chunk
// and a JPEG EXIF UserComment, written and read back; A1111's documented PNG Info text parses.
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import jpeg from "jpeg-js";
import { encodeImage, encodeJpeg } from "../src/cli/_image.ts";
import { decodeImage, ImageReadError, pngText } from "../src/cli/_image_read.ts";
import {
  formatInfotext,
  jpegUserComment,
  jpegWithUserComment,
  parseInfotext,
  pngWithText,
  readInfotext,
} from "../src/cli/_parameters.ts";
import { infotextFields, valuesFromInfotext } from "../src/cli/_sample_params.ts";

// the PNG Info text of an A1111 1.9 image, as its wiki and issues show it (quoted values too)
const A1111 = `a photo of an astronaut riding a horse on mars, (masterpiece:1.2)
Negative prompt: blurry, lowres
Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, ` +
  `Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, ` +
  `Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.9.4`;

Deno.test("A1111's documented infotext parses into prompt, negative and fields", () => {
  const p = parseInfotext(A1111);
  equal(p.prompt, "a photo of an astronaut riding a horse on mars, (masterpiece:1.2)");
  equal(p.negative, "blurry, lowres");
  equal(p.fields.get("Steps"), "20");
  equal(p.fields.get("Schedule type"), "Karras");
  equal(p.fields.get("Size"), "512x768");
  equal(p.fields.get("Lora hashes"), "add_detail: 7c6bad76eb54");
  equal(p.fields.get("Version"), "v1.9.4");
  const v = valuesFromInfotext(p);
  deepEqual(
    [v.steps, v.sampler, v.schedule, v.cfg, v.seed, v.width, v.height],
    ["20", "DPM++ 2M", "karras", "7", "1234567890", "512", "768"],
  );
  // the old one-label form and "Automatic"
  const old = valuesFromInfotext(parseInfotext("x\nSteps: 5, Sampler: Euler a, Seed: 3"));
  deepEqual([old.sampler, old.schedule, old.negative], ["Euler a", undefined, ""]);
  // a prompt with no settings line is all prompt
  equal(parseInfotext("just a prompt").prompt, "just a prompt");
});

Deno.test("our infotext uses A1111's labels and round-trips our exact settings", () => {
  const f = infotextFields({
    steps: 30,
    sampler: "dpmpp_2m_karras",
    cfg: 6.5,
    seed: 42,
    width: 640,
    height: 512,
    model: "my, model",
    strength: 0.6,
  });
  const text = formatInfotext("a (cat:1.2)", "dog", f);
  equal(
    text,
    "a (cat:1.2)\nNegative prompt: dog\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, " +
      'CFG scale: 6.5, Seed: 42, Size: 640x512, Model: "my, model", Denoising strength: 0.6, ' +
      "Denoise sampler: dpmpp_2m_karras",
  );
  const v = valuesFromInfotext(parseInfotext(text));
  deepEqual(
    [v.prompt, v.negative, v.sampler, v.schedule, v.steps, v.cfg, v.strength],
    ["a (cat:1.2)", "dog", "dpmpp_2m_karras", undefined, "30", "6.5", "0.6"],
  );
  const k = infotextFields({
    steps: 8,
    sampler: "euler_ancestral",
    schedule: "sgm_uniform",
    cfg: 7,
    seed: 1,
    width: 64,
    height: 64,
    model: "m",
  });
  deepEqual(k.slice(1, 3), [["Sampler", "Euler a"], ["Schedule type", "SGM Uniform"]]);
  deepEqual(valuesFromInfotext(parseInfotext(formatInfotext("p", "", k))).schedule, "sgm_uniform");
});

const IMG = { width: 3, height: 2, rgb: Uint8Array.from({ length: 18 }, (_, i) => i * 13) };

Deno.test("a PNG carries the parameters chunk and still decodes to the same pixels", async () => {
  const text = formatInfotext("a cat", "", [["Steps", "3"], ["Seed", "1"], ["Size", "3x2"]]);
  const png = pngWithText(await encodeImage(IMG, "png"), "parameters", text);
  equal((await pngText(png)).get("parameters"), text);
  deepEqual(await decodeImage(png), IMG);
  // non-Latin-1 text goes in an iTXt chunk as UTF-8
  const uni = pngWithText(
    await encodeImage(IMG, "png"),
    "parameters",
    "猫 (cat)\nSteps: 3, Seed: 1, Size: 3x2",
  );
  equal((await readInfotext(uni, "uni")).prompt, "猫 (cat)");
  const plain = await encodeImage(IMG, "png");
  await rejects(() => readInfotext(plain, "plain.png"), ImageReadError);
});

Deno.test("a JPEG carries the parameters as EXIF UserComment and still decodes", async () => {
  const text = "a 猫\nNegative prompt: dog\nSteps: 3, Sampler: Euler, Seed: 9";
  const jpg = jpegWithUserComment(encodeJpeg(IMG), text);
  equal(jpegUserComment(jpg), text);
  equal((await readInfotext(jpg, "x.jpg")).negative, "dog");
  const d = jpeg.decode(jpg, { useTArray: true });
  deepEqual([d.width, d.height], [3, 2]);
  equal(jpegUserComment(encodeJpeg(IMG)), undefined);
});

Deno.test("damaged or foreign files are clear errors", async () => {
  await rejects(() => decodeImage(new Uint8Array([1, 2, 3])), (e: Error) => {
    ok(e instanceof ImageReadError && e.message.includes("neither a PNG nor a JPEG"), e.message);
    return true;
  });
  const png = await encodeImage(IMG, "png");
  await rejects(() => decodeImage(png.subarray(0, 40)), ImageReadError);
});
