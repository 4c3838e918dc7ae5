// Loaders: the same tiny weights saved as a diffusers folder and as a single-file original
// checkpoint load to identical outputs; bad files name their missing and unexpected keys.
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { deviceInfo, noGrad, type Tensor, tensor } from "../mod.ts";
import {
  SD15_UNET_CONFIG,
  SD15_VAE_CONFIG,
  StateDictError,
  unetKeyToOriginal,
  vaeKeyToOriginal,
} from "../src/nn/mod.ts";
import {
  loadDiffusersFolder,
  loadSingleFile,
  loadStableDiffusion,
  saveDiffusersFolder,
  saveSingleFile,
  type StableDiffusionModels,
} from "../src/nn/loaders_fs.ts";
import { parseSafetensors, toSafetensorsInputs } from "../src/nn/safetensors.ts";
import { writeSafetensors } from "../src/nn/safetensors_fs.ts";
import { randomData } from "./_helpers.ts";
import { tinyModels } from "./_sd_fixture.ts";

function input(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float32Array.from(randomData(n, seed)), shape);
}

function outputs(
  m: Pick<StableDiffusionModels, "unet" | "vae" | "textEncoder">,
): Promise<Float32Array[]> {
  const x = input([1, 4, 8, 8], 1), ctx = input([1, 8, 32], 2);
  const ys = noGrad(() => [
    m.unet.forward(x, 400, ctx),
    m.vae.decode(x),
    m.vae.encode(input([1, 3, 16, 16], 3)).mean,
    m.textEncoder.forward([0, 3, 1, 1, 1, 1, 1, 1], [1, 8]),
  ]);
  return Promise.all(ys.map((y) => y.toArray()));
}

Deno.test("SD 1.x key mapping follows the original layout", () => {
  const c = SD15_UNET_CONFIG;
  const cases: [string, string][] = [
    ["conv_in.weight", "input_blocks.0.0.weight"],
    ["time_embedding.linear_2.bias", "time_embed.2.bias"],
    ["down_blocks.0.resnets.1.norm1.weight", "input_blocks.2.0.in_layers.0.weight"],
    ["down_blocks.1.attentions.0.proj_in.weight", "input_blocks.4.1.proj_in.weight"],
    ["down_blocks.2.downsamplers.0.conv.bias", "input_blocks.9.0.op.bias"],
    ["down_blocks.3.resnets.1.conv2.weight", "input_blocks.11.0.out_layers.3.weight"],
    ["down_blocks.1.resnets.0.conv_shortcut.weight", "input_blocks.4.0.skip_connection.weight"],
    ["mid_block.attentions.0.norm.weight", "middle_block.1.norm.weight"],
    ["mid_block.resnets.1.time_emb_proj.weight", "middle_block.2.emb_layers.1.weight"],
    ["up_blocks.0.resnets.2.conv1.weight", "output_blocks.2.0.in_layers.2.weight"],
    ["up_blocks.0.upsamplers.0.conv.weight", "output_blocks.2.1.conv.weight"],
    ["up_blocks.1.upsamplers.0.conv.weight", "output_blocks.5.2.conv.weight"],
    [
      "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight",
      "output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight",
    ],
    ["conv_norm_out.bias", "out.0.bias"],
    ["conv_out.weight", "out.2.weight"],
  ];
  for (const [d, o] of cases) equal(unetKeyToOriginal(d, c), o, d);
  const v = SD15_VAE_CONFIG;
  const vcases: [string, string][] = [
    [
      "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
      "encoder.down.1.block.0.nin_shortcut.weight",
    ],
    ["encoder.down_blocks.0.downsamplers.0.conv.weight", "encoder.down.0.downsample.conv.weight"],
    ["encoder.conv_norm_out.weight", "encoder.norm_out.weight"],
    ["encoder.mid_block.resnets.0.norm1.bias", "encoder.mid.block_1.norm1.bias"],
    ["decoder.mid_block.attentions.0.to_out.0.weight", "decoder.mid.attn_1.proj_out.weight"],
    ["decoder.mid_block.attentions.0.group_norm.weight", "decoder.mid.attn_1.norm.weight"],
    ["decoder.up_blocks.0.resnets.2.conv1.weight", "decoder.up.3.block.2.conv1.weight"],
    ["decoder.up_blocks.2.upsamplers.0.conv.bias", "decoder.up.1.upsample.conv.bias"],
    ["post_quant_conv.weight", "post_quant_conv.weight"],
  ];
  for (const [d, o] of vcases) equal(vaeKeyToOriginal(d, v), o, d);
});

Deno.test("The same weights in diffusers and single-file layouts load to identical outputs", async () => {
  const dir = await Deno.makeTempDir();
  const m = tinyModels(3);
  const want = await outputs(m);
  try {
    await saveDiffusersFolder(`${dir}/folder`, m);
    await saveSingleFile(`${dir}/model.safetensors`, m);
    const a = await loadStableDiffusion(`${dir}/folder`);
    ok(a.tokenizer, "the folder's tokenizer loads");
    deepEqual(a.unet.config, m.unet.config);
    // single files carry no heads / norm groups: pass the tiny ones (the rest is inferred)
    const b = await loadSingleFile(`${dir}/model.safetensors`, {
      unet: { attentionHeads: 2, normNumGroups: 8 },
      vae: { normNumGroups: 8 },
      textEncoder: { heads: 2 },
    });
    deepEqual(b.unet.config, m.unet.config);
    deepEqual(b.vae.config, m.vae.config);
    deepEqual(b.textEncoder.config, m.textEncoder.config);
    // by default weights load f16 where the adapter has shader-f16: both layouts alike
    const wd = deviceInfo().f16 ? "f16" : "f32";
    for (const s of [a, b]) equal(s.unet.stateDict().get("conv_in.weight")?.dtype, wd);
    const ya = await outputs(a), yb = await outputs(b);
    // kept f32, the loaded weights reproduce the saved model's outputs exactly
    const c = await loadStableDiffusion(`${dir}/folder`, { weightDType: "f32" });
    const yc = await outputs(c);
    for (let i = 0; i < want.length; i++) {
      deepEqual(yb[i], ya[i], `single-file output ${i}`);
      deepEqual(yc[i], want[i], `f32 diffusers output ${i}`);
    }
    for (const s of [a, b, c, m]) [s.unet, s.vae, s.textEncoder].forEach((x) => x.dispose());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Loading fails with the missing and unexpected keys named", async () => {
  const dir = await Deno.makeTempDir();
  const m = tinyModels(4);
  try {
    await saveDiffusersFolder(dir, m);
    const inputs = await toSafetensorsInputs(m.unet.stateDict());
    delete inputs["conv_out.bias"];
    delete inputs["mid_block.attentions.0.proj_in.weight"];
    inputs["down_blocks.0.resnets.0.extra.weight"] = { data: new Float32Array(2), shape: [2] };
    await writeSafetensors(`${dir}/unet/diffusion_pytorch_model.safetensors`, inputs);
    await rejects(loadDiffusersFolder(dir), (e: Error) => {
      ok(e instanceof StateDictError);
      ok(e.message.includes("2 missing keys"), e.message);
      ok(e.message.includes('"conv_out.bias"'), e.message);
      ok(e.message.includes('"mid_block.attentions.0.proj_in.weight"'), e.message);
      ok(e.message.includes("1 unexpected keys"), e.message);
      ok(e.message.includes('"down_blocks.0.resnets.0.extra.weight"'), e.message);
      return true;
    });
    // a single file lacking one VAE tensor names it by its original key
    await saveSingleFile(`${dir}/one.safetensors`, m);
    const { tensors } = parseSafetensors(await Deno.readFile(`${dir}/one.safetensors`));
    delete tensors["first_stage_model.decoder.mid.attn_1.proj_out.weight"];
    await writeSafetensors(
      `${dir}/one.safetensors`,
      Object.fromEntries(
        Object.entries(tensors).map(([k, t]) => [k, { data: t.data, shape: t.shape }]),
      ),
    );
    await rejects(
      loadSingleFile(`${dir}/one.safetensors`, {
        unet: { attentionHeads: 2, normNumGroups: 8 },
        vae: { normNumGroups: 8 },
        textEncoder: { heads: 2 },
      }),
      (e: Error) => {
        ok(e instanceof StateDictError);
        ok(e.message.includes("the VAE"), e.message);
        ok(e.message.includes('"first_stage_model.decoder.mid.attn_1.proj_out.weight'), e.message);
        return true;
      },
    );
    await rejects(loadStableDiffusion(`${dir}/nothing-here`), (e: Error) => {
      ok(e instanceof StateDictError && e.message.includes("nothing-here"), e.message);
      return true;
    });
  } finally {
    [m.unet, m.vae, m.textEncoder].forEach((x) => x.dispose());
    await Deno.remove(dir, { recursive: true });
  }
});
