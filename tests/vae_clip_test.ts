// AutoencoderKL and CLIPTextModel on tiny configs: shapes, diffusers' key names, the latent
// distribution, the wide-head attention fallback and the causal mask.
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { Generator, noGrad, scope, ShapeError, type Tensor, tensor } from "../src/ops/mod.ts";
import { AutoencoderKL, CLIPTextModel, SpatialSelfAttention } from "../src/nn/mod.ts";
import { assertClose, randomData } from "./_helpers.ts";
import { TINY_CLIP, TINY_VAE } from "./_sd_fixture.ts";

function input(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float32Array.from(randomData(n, seed)), shape);
}

Deno.test("AutoencoderKL encodes to mean/logvar, samples and decodes at the right shapes", async () => {
  using vae = new AutoencoderKL(TINY_VAE, { generator: new Generator(1) });
  equal(vae.scalingFactor, 0.18215);
  await scope(async () => {
    const x = input([2, 3, 16, 16], 1);
    const { mean, logvar } = noGrad(() => vae.encode(x));
    deepEqual(mean.shape, [2, 4, 8, 8]);
    deepEqual(logvar.shape, [2, 4, 8, 8]);
    const lv = await logvar.toArray();
    ok(lv.every((v) => v >= -30 && v <= 20));
    const z1 = vae.sample({ mean, logvar }, { generator: new Generator(7) });
    const z2 = vae.sample({ mean, logvar }, { generator: new Generator(7) });
    deepEqual(await z1.toArray(), await z2.toArray());
    const y = noGrad(() => vae.decode(z1));
    deepEqual(y.shape, [2, 3, 16, 16]);
    throws(() => vae.encode(input([1, 3, 15, 16], 2)), ShapeError);
    throws(() => vae.decode(input([1, 3, 8, 8], 2)), ShapeError);
  });
  const keys = [...vae.stateDict().keys()];
  for (
    const k of [
      "encoder.conv_in.weight",
      "encoder.down_blocks.0.resnets.0.norm1.weight",
      "encoder.down_blocks.0.downsamplers.0.conv.weight",
      "encoder.mid_block.attentions.0.group_norm.weight",
      "encoder.mid_block.attentions.0.to_q.bias",
      "encoder.mid_block.attentions.0.to_out.0.weight",
      "encoder.mid_block.resnets.1.conv2.weight",
      "encoder.conv_norm_out.weight",
      "decoder.up_blocks.0.resnets.1.conv1.weight",
      "decoder.up_blocks.0.upsamplers.0.conv.weight",
      "decoder.up_blocks.1.resnets.0.conv_shortcut.weight",
      "quant_conv.weight",
      "post_quant_conv.bias",
    ]
  ) ok(keys.includes(k), k);
  ok(!keys.some((k) => k.includes("time_emb_proj")));
  ok(!keys.includes("decoder.up_blocks.1.upsamplers.0.conv.weight"));
});

Deno.test("VAE attention's materialized-score path matches the fused kernel", async () => {
  using a = new SpatialSelfAttention(16, { groups: 4, generator: new Generator(3) });
  const x = input([2, 16, 3, 5], 4);
  const fused = await noGrad(() => a.forwardSpatial(x)).toArray();
  const wide = await noGrad(() => a.forwardSpatial(x, { materialize: true })).toArray();
  assertClose(wide, fused, 1e-5, 1e-4, "attention paths");
});

Deno.test("CLIPTextModel gives [B, T, width] with transformers' key names and a causal mask", async () => {
  using te = new CLIPTextModel(TINY_CLIP, { generator: new Generator(5) });
  const ids = [0, 5, 9, 1, 1, 1, 1, 1, 0, 7, 1, 1, 1, 1, 1, 1];
  const y = noGrad(() => te.forward(ids, [2, 8]));
  deepEqual(y.shape, [2, 8, 32]);
  // causal: changing token 3 leaves positions 0..2 unchanged and changes position 3
  const ids2 = ids.slice();
  ids2[3] = 42;
  const a = await y.toArray(), b = await noGrad(() => te.forward(ids2, [2, 8])).toArray();
  deepEqual(a.slice(0, 3 * 32), b.slice(0, 3 * 32));
  ok(a.slice(3 * 32, 4 * 32).some((v, i) => v !== b[3 * 32 + i]));
  throws(() => te.forward(ids, [2, 7]), ShapeError);
  throws(() => te.forward(new Array(18).fill(0), [2, 9]), ShapeError);
  const keys = [...te.stateDict().keys()];
  for (
    const k of [
      "text_model.embeddings.token_embedding.weight",
      "text_model.embeddings.position_embedding.weight",
      "text_model.encoder.layers.0.self_attn.q_proj.weight",
      "text_model.encoder.layers.1.self_attn.out_proj.bias",
      "text_model.encoder.layers.0.layer_norm1.weight",
      "text_model.encoder.layers.0.mlp.fc1.weight",
      "text_model.encoder.layers.0.mlp.fc2.bias",
      "text_model.encoder.layers.1.layer_norm2.bias",
      "text_model.final_layer_norm.weight",
    ]
  ) ok(keys.includes(k), k);
});
