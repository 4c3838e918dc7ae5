// LDM YAML configs for single-file checkpoints: the YAML subset reader (checked against PyYAML on
// CompVis' v1-inference.yaml in a scratch run: identical trees), the settings it gives, and
// `mod.ts sample` using the .yaml beside a checkpoint, refusing one that contradicts the tensors.
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { Generator } from "../src/ops/mod.ts";
import { AutoencoderKL, CLIPTextModel, UNet2DConditionModel } from "../src/nn/mod.ts";
import { saveDiffusersFolder, saveSingleFile } from "../src/nn/loaders_fs.ts";
import { parseYaml, YamlError } from "../src/nn/yaml_subset.ts";
import { checkAgainstTensors, LdmConfigError, ldmSettings } from "../src/nn/ldm_config.ts";
import { decodeImage } from "../src/cli/_image_read.ts";
import { TINY_TOKENIZER } from "./_sd_fixture.ts";
import "./_helpers.ts"; // acquires the GPU device
import { runCli as run } from "./_cli_fixtures.ts";

// CompVis/stable-diffusion configs/stable-diffusion/v1-inference.yaml, abridged (its structure:
// comments, quoted strings, flow and block lists, booleans, exponents)
const V1 = `model:
  base_learning_rate: 1.0e-04
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    timesteps: 1000
    first_stage_key: "jpg"
    image_size: 64
    cond_stage_trainable: false   # Note: different from the one we trained before
    scale_factor: 0.18215
    use_ema: False

    scheduler_config: # 10000 warmup steps
      params:
        f_start: [ 1.e-6 ]
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 32 # unused
        in_channels: 4
        out_channels: 4
        model_channels: 320
        attention_resolutions: [ 4, 2, 1 ]
        num_res_blocks: 2
        channel_mult: [ 1, 2, 4, 4 ]
        num_heads: 8
        transformer_depth: 1
        context_dim: 768
    first_stage_config:
      params:
        ddconfig:
          z_channels: 4
          in_channels: 3
          out_ch: 3
          ch: 128
          ch_mult:
          - 1
          - 2
          - 4
          - 4
          num_res_blocks: 2
          attn_resolutions: []
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
`;

Deno.test("the YAML reader reads LDM configs and refuses what it does not support", () => {
  const y = parseYaml(V1) as Record<string, Record<string, Record<string, unknown>>>;
  const p = y.model!.params!;
  equal(p.linear_end, 0.012);
  equal(p.first_stage_key, "jpg");
  equal(p.use_ema, false);
  deepEqual((p.scheduler_config as { params: { f_start: number[] } }).params.f_start, [1e-6]);
  deepEqual(parseYaml("a:\n- 1\n- x: 2\n  y: [3, 'q']\n"), { a: [1, { x: 2, y: [3, "q"] }] });
  deepEqual(parseYaml("k: {a: 1, b: [2]}  # c"), { k: { a: 1, b: [2] } });
  for (
    const [bad, line] of [["a: 1\n\tb: 2", 2], ["a: &x 1", 1], ['a: "open', 1], ["a: 1\na: 2", 2], [
      "a: [1, 2",
      1,
    ]] as const
  ) {
    throws(() => parseYaml(bad), (e: Error) => {
      ok(e instanceof YamlError && e.message.startsWith(`Line ${line}:`), `${bad}: ${e.message}`);
      return true;
    });
  }
});

Deno.test("an LDM config gives SD 1.x's U-Net, VAE and schedule; SD 2.x-v's heads and v", () => {
  const s = ldmSettings(parseYaml(V1), "v1");
  deepEqual(s.unet.blockOutChannels, [320, 640, 1280, 1280]);
  deepEqual(s.unet.downBlockTypes, [
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "DownBlock2D",
  ]);
  deepEqual(s.unet.upBlockTypes, [
    "UpBlock2D",
    "CrossAttnUpBlock2D",
    "CrossAttnUpBlock2D",
    "CrossAttnUpBlock2D",
  ]);
  deepEqual([s.unet.attentionHeads, s.unet.crossAttentionDim, s.unet.sampleSize], [8, 768, 64]);
  deepEqual(s.vae.blockOutChannels, [128, 256, 512, 512]);
  deepEqual(s.schedule, { betaStart: 0.00085, betaEnd: 0.012, trainSteps: 1000 });
  equal(s.prediction, undefined);
  const v2 = ldmSettings(
    parseYaml(
      V1.replace("num_heads: 8", "num_head_channels: 64\n        num_heads: -1")
        .replace("context_dim: 768", "context_dim: 1024")
        .replace("timesteps: 1000", 'timesteps: 1000\n    parameterization: "v"')
        .replace(
          "FrozenCLIPEmbedder",
          'FrozenOpenCLIPEmbedder\n      params:\n        layer: "penultimate"',
        ),
    ),
    "v2",
  );
  deepEqual(v2.unet.attentionHeads, [5, 10, 20, 20]);
  deepEqual([v2.prediction, v2.clipSkip, v2.unet.crossAttentionDim], ["v_prediction", 2, 1024]);
  // a contradiction names the YAML path and both values
  throws(
    () => checkAgainstTensors(s, { unet: { crossAttentionDim: 1024 }, vae: {} }, "v1"),
    (e: Error) => {
      ok(e instanceof LdmConfigError, e.message);
      ok(
        e.message.includes(
          "model.params.unet_config.params.context_dim gives U-Net crossAttentionDim = 768",
        ) && e.message.includes("1024"),
        e.message,
      );
      return true;
    },
  );
  throws(() => ldmSettings(parseYaml("model:\n  target: x\n"), "bad"), LdmConfigError);
});

// a tiny model LDM's fixed choices fit (32 norm groups, CLIP width divisible by 12 heads)
const TINY_YAML = `model:
  params:
    image_size: 8
    scale_factor: 0.18215
    unet_config:
      params:
        in_channels: 4
        out_channels: 4
        model_channels: 32
        attention_resolutions: [1]
        num_res_blocks: 1
        channel_mult: [1, 2]
        num_heads: 2
        context_dim: 48
    first_stage_config:
      params:
        ddconfig: {z_channels: 4, ch: 32, ch_mult: [1, 2], num_res_blocks: 1, in_channels: 3, out_ch: 3}
`;

Deno.test("mod.ts sample reads the .yaml beside a single file and refuses a contradicting one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const g = new Generator(5);
    const m = {
      unet: new UNet2DConditionModel({
        blockOutChannels: [32, 64],
        layersPerBlock: 1,
        attentionHeads: 2,
        crossAttentionDim: 48,
        downBlockTypes: ["CrossAttnDownBlock2D", "DownBlock2D"],
        upBlockTypes: ["UpBlock2D", "CrossAttnUpBlock2D"],
        sampleSize: 8,
      }, { generator: g }),
      vae: new AutoencoderKL({ blockOutChannels: [32, 64], layersPerBlock: 1 }, { generator: g }),
      textEncoder: new CLIPTextModel({
        vocabSize: 64,
        hiddenSize: 48,
        intermediateSize: 96,
        heads: 12,
        layers: 2,
        maxPositions: 8,
      }, { generator: g }),
      tokenizerFiles: TINY_TOKENIZER,
    };
    await saveDiffusersFolder(`${dir}/folder`, m);
    await saveSingleFile(`${dir}/one.safetensors`, m);
    [m.unet, m.vae, m.textEncoder].forEach((x) => x.dispose());
    const args = (model: string, out: string, ...extra: string[]) => [
      "sample",
      "--model",
      model,
      "--prompt",
      "a cat",
      "--steps",
      "2",
      "--out",
      `${dir}/${out}`,
      "--tokenizer",
      `${dir}/folder/tokenizer`,
      ...extra,
    ];
    const px = async (f: string) => await decodeImage(await Deno.readFile(`${dir}/${f}`));
    let r = await run(args(`${dir}/folder`, "f.png"));
    equal(r.code, 0, r.stderr);
    // without a config the single file gets SD 1.x's 8 heads: another image
    r = await run(args(`${dir}/one.safetensors`, "n.png", "--width", "16", "--height", "16"));
    equal(r.code, 0, r.stderr);
    ok((await px("n.png")).rgb.join() !== (await px("f.png")).rgb.join(), "heads should matter");
    // with the YAML beside it: the folder's exact image, at the model's own size (8 x 2 = 16)
    await Deno.writeTextFile(`${dir}/one.yaml`, TINY_YAML);
    r = await run(args(`${dir}/one.safetensors`, "y.png"));
    equal(r.code, 0, r.stderr);
    const y = await px("y.png");
    equal(`${y.width}x${y.height}`, "16x16");
    deepEqual(y.rgb, (await px("f.png")).rgb);
    // a contradiction, and an unreadable YAML, through --original-config
    await Deno.writeTextFile(
      `${dir}/bad.yaml`,
      TINY_YAML.replace("context_dim: 48", "context_dim: 64"),
    );
    r = await run(args(`${dir}/one.safetensors`, "x.png", "--original-config", `${dir}/bad.yaml`));
    equal(r.code, 1);
    ok(
      r.stderr.includes("unet_config.params.context_dim gives U-Net crossAttentionDim = 64") &&
        r.stderr.includes("48"),
      r.stderr,
    );
    await Deno.writeTextFile(`${dir}/broken.yaml`, "model:\n  params: [1, 2\n");
    r = await run(
      args(`${dir}/one.safetensors`, "x.png", "--original-config", `${dir}/broken.yaml`),
    );
    equal(r.code, 1);
    ok(r.stderr.includes("is not YAML this reader understands: Line 2"), r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
