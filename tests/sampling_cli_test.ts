// `mod.ts sample` with the k-diffusion samplers: an AUTOMATIC1111 label and a --schedule run end
// to end on a tiny random model folder; a bad schedule or sampler is a usage error listing the
// valid names.
import { equal, notDeepEqual, ok } from "node:assert/strict";
import { saveDiffusersFolder } from "../src/nn/loaders_fs.ts";
import { tinyModels } from "./_sd_fixture.ts";
import "./_helpers.ts"; // acquires the GPU device

const MOD = new URL("../mod.ts", import.meta.url).pathname;

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("mod.ts sample takes A1111 sampler labels and ComfyUI schedules", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const m = tinyModels(9);
    await saveDiffusersFolder(`${dir}/model`, m);
    [m.unet, m.vae, m.textEncoder].forEach((x) => x.dispose());
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
    // the same sampler, schedule and seed: the same image
    equal(
      (await Deno.readFile(`${dir}/a.png`)).join(),
      (await Deno.readFile(`${dir}/b.png`)).join(),
    );
    const c = await run(args("c.png", "--sampler", "dpmpp_2m_sde", "--schedule", "beta"));
    equal(c.code, 0, c.stderr);
    notDeepEqual(await Deno.readFile(`${dir}/a.png`), await Deno.readFile(`${dir}/c.png`));
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
    const help = await run(["sample", "--help"]);
    ok(help.stdout.includes("--schedule") && help.stdout.includes("uni_pc"), help.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
