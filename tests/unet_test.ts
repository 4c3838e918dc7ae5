// U-Net layers and model on tiny configs (same code paths as SD 1.x): layer outputs against CPU
// references, shapes through every block, safetensors save/load, backward, finite differences,
// and one AdamW step for the GroupNorm and BatchNorm variants.
import { deepEqual, equal, notDeepEqual, ok, throws } from "node:assert/strict";
import {
  AdamW,
  attentionRef,
  backward,
  Generator,
  matmulRef,
  mean,
  mul,
  noGrad,
  scope,
  ShapeError,
  square,
  sub,
  sum,
  type Tensor,
  tensor,
} from "../src/ops/mod.ts";
import {
  Attention,
  Conv2d,
  FeedForward,
  Linear,
  ResnetBlock2D,
  timestepFeatures,
  UNet2DConditionModel,
} from "../src/nn/mod.ts";
import { SafetensorsFile, writeSafetensors } from "../src/nn/mod_fs.ts";
import { toSafetensorsInputs } from "../src/nn/safetensors.ts";
import { assertClose, randomData } from "./_helpers.ts";
import { TINY_UNET } from "./_sd_fixture.ts";

function input(shape: number[], seed: number, requiresGrad = false): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float32Array.from(randomData(n, seed)), shape, { requiresGrad });
}

/** `v W^T` for v [rows, inF], W [outF, inF]. */
function linRef(
  v: ArrayLike<number>,
  w: ArrayLike<number>,
  rows: number,
  inF: number,
  outF: number,
): Float64Array {
  return matmulRef(v, [1, rows, inF], w, [1, outF, inF], false, true);
}

async function arr(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.toArray());
}

Deno.test("Linear matches x W^T + b on a 3-D input", async () => {
  using fc = new Linear(5, 3, { generator: new Generator(3) });
  const x = input([2, 4, 5], 1);
  const y = fc.forward(x);
  deepEqual(y.shape, [2, 4, 3]);
  const w = await arr(fc.param("weight").value), b = await arr(fc.param("bias").value);
  const want = linRef(await arr(x), w, 8, 5, 3);
  for (let i = 0; i < want.length; i++) want[i]! += b[i % 3]!;
  assertClose(await y.toArray(), want, 1e-5, 1e-4, "linear");
  throws(() => fc.forward(input([2, 4], 2)), ShapeError);
});

Deno.test("Attention matches a CPU reference for self and cross attention", async () => {
  const B = 2, T = 5, S = 3, C = 8, H = 2, Cc = 6;
  using attn = new Attention(C, { heads: H, crossAttentionDim: Cc, generator: new Generator(4) });
  const x = input([B, T, C], 5), ctx = input([B, S, Cc], 6);
  const W = (path: string) => arr(attn.child(path).param("weight").value);
  const proj = linRef;
  const heads = (v: Float64Array, t: number) => {
    // [B, t, H*D] -> [B, H, t, D]
    const D = C / H, out = new Float64Array(v.length);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < t; i++) {
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < D; d++) {
            out[((b * H + h) * t + i) * D + d] = v[(b * t + i) * C + h * D + d]!;
          }
        }
      }
    }
    return out;
  };
  const merge = (v: Float64Array, t: number) => {
    const D = C / H, out = new Float64Array(v.length);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < t; i++) {
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < D; d++) {
            out[(b * t + i) * C + h * D + d] = v[((b * H + h) * t + i) * D + d]!;
          }
        }
      }
    }
    return out;
  };
  const xs = await arr(x), cs = await arr(ctx);
  const q = heads(proj(xs, await W("to_q"), B * T, C, C), T);
  const k = heads(proj(cs, await W("to_k"), B * S, Cc, C), S);
  const v = heads(proj(cs, await W("to_v"), B * S, Cc, C), S);
  const o = merge(attentionRef(q, k, v, [B, H, T, C / H], S), T);
  const out = proj(o, await W("to_out.0"), B * T, C, C);
  const bias = await arr(attn.child("to_out.0").param("bias").value);
  for (let i = 0; i < out.length; i++) out[i]! += bias[i % C]!;
  assertClose(await attn.forward(x, ctx).toArray(), out, 1e-5, 1e-4, "cross attention");
  using self = new Attention(C, { heads: H });
  deepEqual(self.forward(x).shape, [B, T, C]);
  throws(() => attn.forward(x, input([B, S, C], 7)), ShapeError);
  deepEqual(
    [...attn.stateDict().keys()],
    ["to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight", "to_out.0.bias"],
  );
});

Deno.test("FeedForward is net.2(h * gelu(gate)) with GEGLU keys", async () => {
  using ff = new FeedForward(4, { mult: 2, generator: new Generator(8) });
  deepEqual([...ff.stateDict().entries()].map(([k, t]) => [k, t.shape]), [
    ["net.0.proj.weight", [16, 4]],
    ["net.0.proj.bias", [16]],
    ["net.2.weight", [4, 8]],
    ["net.2.bias", [4]],
  ]);
  const x = input([3, 4], 9);
  const p = await arr(ff.child<Linear>("net.0.proj").forward(x));
  const g = new Float64Array(3 * 8);
  const erf = (z: number) => {
    // Abramowitz-Stegun 7.1.26 is too coarse; use the series
    let s = z, t = z;
    for (let n = 1; n < 60; n++) {
      t *= -z * z / n;
      s += t / (2 * n + 1);
    }
    return 2 / Math.sqrt(Math.PI) * s;
  };
  for (let r = 0; r < 3; r++) {
    for (let j = 0; j < 8; j++) {
      const h = p[r * 16 + j]!, gate = p[r * 16 + 8 + j]!;
      g[r * 8 + j] = h * 0.5 * gate * (1 + erf(gate / Math.SQRT2));
    }
  }
  const w2 = await arr(ff.child("net.2").param("weight").value);
  const b2 = await arr(ff.child("net.2").param("bias").value);
  const want = linRef(g, w2, 3, 8, 4);
  for (let i = 0; i < want.length; i++) want[i]! += b2[i % 4]!;
  assertClose(await ff.forward(x).toArray(), want, 1e-5, 1e-4, "feed-forward");
});

Deno.test("timestepFeatures() puts cosines first with shift 0 (diffusers' SD embedding)", () => {
  const f = timestepFeatures([0, 10], 4);
  // half = 2, freqs = [1, exp(-ln(1e4)/2) = 0.01]
  assertClose(f, [1, 1, 0, 0, Math.cos(10), Math.cos(0.1), Math.sin(10), Math.sin(0.1)], 1e-6, 0);
});

Deno.test("ResnetBlock2D adds a 1x1 shortcut only when channels change", () => {
  using a = new ResnetBlock2D(16, 16, { tembChannels: 8, groups: 4 });
  using b = new ResnetBlock2D(16, 32, { tembChannels: 8, groups: 4 });
  ok(!a.getChild("conv_shortcut"));
  deepEqual(b.child("conv_shortcut").param("weight").shape, [32, 16, 1, 1]);
  deepEqual(b.forward(input([2, 16, 4, 4], 1), input([2, 8], 2)).shape, [2, 32, 4, 4]);
});

Deno.test("UNet2DConditionModel shapes through every block of a tiny config", () => {
  using unet = new UNet2DConditionModel(TINY_UNET, { generator: new Generator(1) });
  scope(() =>
    noGrad(() => {
      const B = 2, x = input([B, 4, 16, 16], 1), ctx = input([B, 7, 32], 2);
      const temb = unet.timeEmbedding([10, 900], B);
      deepEqual(temb.shape, [B, 128]);
      let h = unet.child<never>("conv_in") as unknown as { forward(x: Tensor): Tensor };
      let y = h.forward(x);
      deepEqual(y.shape, [B, 32, 16, 16]);
      const skips: Tensor[] = [y];
      const want = [
        { h: [B, 32, 8, 8], skips: [[B, 32, 16, 16], [B, 32, 8, 8]] },
        { h: [B, 64, 8, 8], skips: [[B, 64, 8, 8]] },
      ];
      for (let i = 0; i < 2; i++) {
        const blk = unet.child(`down_blocks.${i}`) as unknown as {
          forward(x: Tensor, t: Tensor, c: Tensor): { h: Tensor; skips: Tensor[] };
        };
        const r = blk.forward(y, temb, ctx);
        deepEqual(r.h.shape, want[i]!.h, `down_blocks.${i}`);
        deepEqual(r.skips.map((s) => s.shape), want[i]!.skips, `down_blocks.${i} skips`);
        y = r.h;
        skips.push(...r.skips);
      }
      const mid = unet.child("mid_block") as unknown as {
        forward(x: Tensor, t: Tensor, c: Tensor): Tensor;
      };
      y = mid.forward(y, temb, ctx);
      deepEqual(y.shape, [B, 64, 8, 8], "mid_block");
      const upWant = [[B, 64, 16, 16], [B, 32, 16, 16]];
      for (let i = 0; i < 2; i++) {
        const blk = unet.child(`up_blocks.${i}`) as unknown as {
          forward(x: Tensor, s: Tensor[], t: Tensor, c: Tensor): Tensor;
        };
        y = blk.forward(y, skips, temb, ctx);
        deepEqual(y.shape, upWant[i], `up_blocks.${i}`);
      }
      equal(skips.length, 0);
      h = unet.child("conv_out") as unknown as { forward(x: Tensor): Tensor };
      deepEqual(h.forward(y).shape, [B, 4, 16, 16]);
      deepEqual(unet.forward(x, 500, ctx).shape, [B, 4, 16, 16]);
      throws(() => unet.forward(input([B, 4, 15, 16], 3), 1, ctx), ShapeError);
      throws(() => unet.forward(x, 1, input([B, 7, 16], 4)), ShapeError);
    })
  );
  // diffusers' channel plan: up_blocks.0 resnets take 64 + 64 then 64 + 32 (the last skip)
  deepEqual(unet.child("up_blocks.0.resnets.0.conv1").param("weight").shape, [64, 128, 3, 3]);
  deepEqual(unet.child("up_blocks.0.resnets.1.conv1").param("weight").shape, [64, 96, 3, 3]);
  deepEqual(unet.child("up_blocks.1.resnets.0.conv1").param("weight").shape, [32, 96, 3, 3]);
  ok(unet.getChild("down_blocks.0.downsamplers.0.conv"));
  ok(!unet.getChild("down_blocks.1.downsamplers"));
  ok(unet.getChild("up_blocks.0.upsamplers.0.conv"));
});

Deno.test("A U-Net saved to safetensors and loaded into another gives identical outputs", async () => {
  using a = new UNet2DConditionModel(TINY_UNET, { generator: new Generator(1) });
  using b = new UNet2DConditionModel(TINY_UNET, { generator: new Generator(2) });
  const x = input([1, 4, 8, 8], 1), ctx = input([1, 5, 32], 2);
  const run = (m: UNet2DConditionModel) => noGrad(() => m.forward(x, 321, ctx)).toArray();
  const ya = await run(a);
  notDeepEqual(await run(b), ya);
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/unet.safetensors`;
    await writeSafetensors(path, await toSafetensorsInputs(a.stateDict()));
    using file = await SafetensorsFile.open(path);
    deepEqual(await b.loadSafetensors(file), { missing: [], unexpected: [] });
    deepEqual(await run(b), ya);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("U-Net backward reaches every parameter with finite gradients", async () => {
  using unet = new UNet2DConditionModel(TINY_UNET, { generator: new Generator(1) });
  const x = input([2, 4, 8, 8], 1, true), ctx = input([2, 5, 32], 2, true);
  scope(() => backward(mean(square(unet.forward(x, [10, 700], ctx)))));
  for (const [name, p] of unet.namedParameters()) {
    ok(p.grad, `${name} has a gradient`);
    deepEqual(p.grad.shape, p.shape);
  }
  for (const t of [x, ctx]) {
    const g = await t.grad!.toArray();
    ok(g.every(Number.isFinite) && g.some((v) => v !== 0));
  }
});

/** CPU float64 `sum(y * r)` of a forward pass. */
async function weightedSum(y: Tensor, r: Float64Array): Promise<number> {
  const a = await y.toArray();
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * r[i]!;
  return s;
}

Deno.test("U-Net gradients of the input and an attention weight match finite differences", async () => {
  // f32 forward, float64 CPU sum. With h = 1e-2 the O(h^2) truncation error is ~1e-5 and the f32
  // rounding of the ~256-term sum (~1e-6 relative each) gives ~2e-5 / (2h) = 1e-3 noise in each
  // finite difference, so we allow 1e-3 absolute plus 2% of the largest gradient checked.
  using unet = new UNet2DConditionModel(TINY_UNET, { generator: new Generator(11) });
  const shape = [1, 4, 8, 8];
  const xData = Float32Array.from(randomData(256, 21));
  const ctx = input([1, 5, 32], 22);
  const r = randomData(256, 23);
  const rT = tensor(Float32Array.from(r), shape);
  const wPath = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v";
  const wParam = unet.child(wPath).param("weight");
  const x = tensor(xData, shape, { requiresGrad: true });
  scope(() => backward(sum(mul(unet.forward(x, 250, ctx), rT))));
  const gx = await x.grad!.toArray(), gw = await wParam.grad!.toArray();
  const wData = await wParam.value.toArray();
  const f = (xs: Float32Array) =>
    scope(() => weightedSum(noGrad(() => unet.forward(tensor(xs, shape), 250, ctx)), r));
  const h = 1e-2;
  const pick = (
    n: number,
    seed: number,
  ) => [...new Set(Array.from(randomData(6, seed), (v) => Math.floor((v + 1) / 2 * n)))];
  const fdX: number[] = [], anX: number[] = [];
  for (const i of pick(256, 31)) {
    const p = xData.slice(), m = xData.slice();
    p[i]! += h;
    m[i]! -= h;
    fdX.push((await f(p) - await f(m)) / (2 * h));
    anX.push(gx[i]!);
  }
  const fdW: number[] = [], anW: number[] = [];
  const base = await f(xData);
  ok(Number.isFinite(base));
  for (const i of pick(wData.length, 32)) {
    const at = async (d: number) => {
      const w = wData.slice();
      w[i]! += d;
      wParam.assign(tensor(w, wParam.shape));
      return await f(xData);
    };
    fdW.push((await at(h) - await at(-h)) / (2 * h));
    anW.push(gw[i]!);
  }
  wParam.assign(tensor(wData, wParam.shape));
  for (const [what, fd, an] of [["input", fdX, anX], ["attn1.to_v weight", fdW, anW]] as const) {
    const scale = Math.max(...an.map(Math.abs));
    ok(scale > 1e-3, `${what} gradients are not all ~0 (${scale})`);
    assertClose(an, fd, 1e-3 + 0.02 * scale, 0, `${what} gradient`);
  }
});

for (const norm of ["group", "batch"] as const) {
  Deno.test(`A tiny ${norm}-norm U-Net trains one AdamW step and its loss changes`, async () => {
    using unet = new UNet2DConditionModel({ ...TINY_UNET, norm }, { generator: new Generator(5) });
    const kinds = new Set(unet.namedModules().map(([, m]) => m.constructor.name));
    ok(kinds.has(norm === "batch" ? "BatchNorm2d" : "GroupNorm"));
    if (norm === "batch") {
      ok(unet.stateDict().has("down_blocks.0.resnets.0.norm1.running_var"));
      ok(unet.stateDict().has("conv_norm_out.num_batches_tracked"));
    }
    const x = input([2, 4, 8, 8], 41),
      ctx = input([2, 5, 32], 42),
      target = input([2, 4, 8, 8], 43);
    const params = unet.trainableParameters().map((p) => p.value);
    const opt = new AdamW(params, { lr: 1e-3 });
    const loss = () => mean(square(sub(unet.forward(x, [100, 600], ctx), target)));
    const l0 = await scope(() => {
      const l = loss();
      backward(l);
      return l.item();
    });
    opt.step();
    opt.zeroGrad();
    const l1 = await scope(() => noGrad(loss).item());
    ok(Number.isFinite(l0) && Number.isFinite(l1));
    ok(l1 < l0, `loss ${l0} -> ${l1}`);
    if (norm === "batch") {
      equal(await unet.child("conv_norm_out").param("num_batches_tracked").value.item(), 2);
    }
  });
}

Deno.test("Conv2d splits input channels when im2col would exceed one storage binding", async () => {
  using conv = new Conv2d(6, 4, 3, { padding: 1, generator: new Generator(12) });
  const x = input([2, 6, 5, 7], 13, true);
  const whole = await conv.forward(x).toArray();
  conv.maxUnfoldBytes = 2 * 9 * 35 * 4 * 4; // 4 channels per chunk: chunks 0-4 and 4-6
  const y = conv.forward(x);
  assertClose(await y.toArray(), whole, 1e-5, 1e-4, "chunked conv");
  scope(() => backward(sum(y)));
  ok(x.grad && conv.param("weight").grad, "the chunked path is differentiable");
});
