// Per-parameter learning rates as kohya's parameter groups: block indices of U-Net module paths
// (golden values from sd-scripts' get_block_index), down/up weight presets, LoRA+ on lora_up, the
// text encoder's own rate, and AdamW's lrScales against the CPU reference with global clipping.
import { deepEqual, equal } from "node:assert/strict";
import { AdamW, adamwRef, add, backward, mul, square, sum, tensor } from "../mod.ts";
import {
  blockIndex,
  blockLrWeight,
  parameterLr,
  parseBlockLrWeight,
} from "../src/train/lr_groups.ts";
import { ConfigError } from "../src/train/errors.ts";
import { assertClose, randomData } from "./_helpers.ts";
import { throwsWith } from "./_train_helpers.ts";

Deno.test("blockIndex() follows kohya's get_block_index on SD 1.x module paths", () => {
  const golden: [string, number][] = [
    ["conv_in", -1],
    ["time_embedding.linear_1", -1],
    ["down_blocks.0.attentions.0.proj_in", 1],
    ["down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_q", 2],
    ["down_blocks.0.resnets.1.conv1", 2],
    ["down_blocks.0.downsamplers.0.conv", 3],
    ["down_blocks.1.attentions.0.proj_out", 4],
    ["down_blocks.2.downsamplers.0.conv", 9],
    ["down_blocks.3.resnets.1.conv2", 11],
    ["mid_block.attentions.0.proj_in", 12],
    ["mid_block.resnets.1.conv1", 12],
    ["up_blocks.0.resnets.0.conv1", 13],
    ["up_blocks.0.upsamplers.0.conv", 15],
    ["up_blocks.1.attentions.2.proj_out", 18],
    ["up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2", 24],
    ["conv_out", -1],
  ];
  for (const [path, idx] of golden) equal(blockIndex(path), idx, path);
});

Deno.test("parseBlockLrWeight() gives kohya's presets, pads to 12 and names bad input", () => {
  const close = (a: number[], b: number[]) => assertClose(a, b, 1e-12, 0, "weights");
  const i = Array.from({ length: 12 }, (_, k) => k);
  close(parseBlockLrWeight("sine", "d"), i.map((k) => Math.sin(Math.PI * k / 11 / 2)));
  close(parseBlockLrWeight("cosine", "d"), i.map((k) => Math.sin(Math.PI * (11 - k) / 11 / 2)));
  close(parseBlockLrWeight("linear", "d"), i.map((k) => k / 11));
  close(parseBlockLrWeight("reverse_linear+0.5", "d"), i.map((k) => (11 - k) / 11 + 0.5));
  deepEqual(parseBlockLrWeight("zeros", "d"), i.map(() => 0));
  deepEqual(parseBlockLrWeight("0,0.5", "d"), [0, 0.5, ...i.slice(2).map(() => 1)]);
  equal(parseBlockLrWeight(i.map(() => "2").join() + ",3,3", "d").length, 12);
  throwsWith(() => parseBlockLrWeight("wavy", "down_lr_weight"), ConfigError, "down_lr_weight");
  throwsWith(() => parseBlockLrWeight("1,x", "up_lr_weight"), ConfigError, '"x" is not');
});

Deno.test("parameterLr(): block weights, zero threshold, LoRA+ on lora_up, text-encoder rate", () => {
  const o = {
    unetLr: 1e-4,
    textEncoderLr: 5e-5,
    blocks: { down: parseBlockLrWeight("linear", "d"), mid: 0.5, zeroThreshold: 0.2 },
    loraplusUnet: 16,
    loraplusTextEncoder: 4,
  };
  equal(blockLrWeight("down_blocks.0.attentions.0.proj_in", o.blocks), 0); // 1/11 < 0.2
  equal(blockLrWeight("down_blocks.1.attentions.0.proj_in", o.blocks), 4 / 11);
  // kohya keeps a weight only when it is above the threshold: one equal to it becomes 0.
  equal(blockLrWeight("mid_block.attentions.0.proj_in", { mid: 0.2, zeroThreshold: 0.2 }), 0);
  equal(parameterLr("unet", "mid_block.attentions.0.proj_in", "lora_down", o), 0.5e-4);
  equal(parameterLr("unet", "mid_block.attentions.0.proj_in", "lora_up", o), 0.5e-4 * 16);
  equal(parameterLr("unet", "up_blocks.1.attentions.0.proj_in", "lora_up", o), 1e-4 * 16);
  equal(parameterLr("unet", "conv_in", "lora_down", o), 1e-4);
  equal(parameterLr("text_encoder", "text_model.encoder.layers.0.mlp.fc1", "lora_down", o), 5e-5);
  equal(parameterLr("text_encoder", "text_model.encoder.layers.0.mlp.fc1", "lora_up", o), 2e-4);
});

Deno.test("AdamW lrScales: each parameter at its own rate, clipping by the global norm", async () => {
  const shapes = [[6], [5]];
  const init = shapes.map((s, i) => Float64Array.from(randomData(s[0]!, 5 + i), Math.fround));
  const coef = shapes.map((s, i) =>
    Float64Array.from(randomData(s[0]!, 13 + i), (x) => Math.fround(2 + x))
  );
  const opts = { lr: 0.05, betas: [0.9, 0.99] as [number, number], eps: 1e-8, weightDecay: 0.1 };
  const scales = [1, 0.25], maxGradNorm = 0.5;
  const params = init.map((d, i) => tensor(d, shapes[i]!, { requiresGrad: true }));
  const c = coef.map((d, i) => tensor(d, shapes[i]!));
  const opt = new AdamW(params, { ...opts, maxGradNorm, lrScales: scales });
  const p = init.map((d) => d.slice()), m = init.map((d) => new Float64Array(d.length));
  const v = init.map((d) => new Float64Array(d.length));
  for (let step = 1; step <= 5; step++) {
    backward(add(sum(mul(square(params[0]!), c[0]!)), sum(mul(square(params[1]!), c[1]!))));
    opt.step();
    opt.zeroGrad();
    const g = p.map((pi, i) => pi.map((x, j) => 2 * coef[i]![j]! * x));
    const norm = Math.sqrt(g.reduce((s, gi) => s + gi.reduce((a, x) => a + x * x, 0), 0));
    const clip = Math.min(1, maxGradNorm / (norm + 1e-6));
    p.forEach((pi, i) =>
      adamwRef(pi, g[i]!, m[i]!, v[i]!, step, { ...opts, lr: opts.lr * scales[i]! }, clip)
    );
  }
  // f32 against f64 over 5 steps: as the AdamW reference test
  for (let i = 0; i < 2; i++) {
    assertClose(await params[i]!.toArray(), p[i]!, 2e-5, 1e-4, `parameter ${i}`);
  }
  opt.dispose();
});
