// Gradient checkpointing in the U-Net (kohya's --gradient_checkpointing): the mid and up blocks
// run again in the backward pass (more dispatches), and every parameter's gradient (down blocks
// through the skips, mid, up) matches the run that keeps its activations.
import { ok } from "node:assert/strict";
import {
  backward,
  dispatchCount,
  Generator,
  getDevice,
  mul,
  randn,
  sum,
  UNet2DConditionModel,
} from "../mod.ts";
import { TINY_UNET } from "./_sd_fixture.ts";
import { assertClose, maxAbs } from "./_helpers.ts";

await getDevice();

Deno.test("U-Net gradient checkpointing recomputes and gives the same gradients", async () => {
  const unet = new UNet2DConditionModel(TINY_UNET, { generator: new Generator(3) });
  const g = new Generator(8);
  const x = randn([2, 4, 8, 8], { generator: g });
  const ctx = randn([2, 5, 32], { generator: g });
  const w = randn([2, 4, 8, 8], { generator: g });
  const params = unet.trainableParameters();
  const grads = async (ckpt: boolean): Promise<[Float32Array[], number]> => {
    unet.gradientCheckpointing = ckpt;
    const d0 = dispatchCount();
    backward(sum(mul(unet.forward(x, [100, 700], ctx), w)));
    const d = dispatchCount() - d0;
    const out: Float32Array[] = [];
    for (const p of params) {
      out.push(await p.value.grad!.toArray());
      p.value.grad!.dispose();
      p.value.grad = null;
    }
    return [out, d];
  };
  const [plain, plainDispatches] = await grads(false);
  const [ckpt, ckptDispatches] = await grads(true);
  ok(ckptDispatches > plainDispatches, `${ckptDispatches} vs ${plainDispatches} dispatches`);
  // same kernels on the same inputs; only the order of gradient sums into the skips may differ,
  // a rounding difference that scales with each tensor's gradients (measured up to 4.6e-7 of its
  // largest |g|, which reaches 3.5): 1e-6 of that largest value, about 8 f32 ulps of it
  plain.forEach((p, i) =>
    assertClose(ckpt[i]!, p, 1e-6 * Math.max(1, maxAbs(p)), 1e-4, `gradient ${i}`)
  );
  ok(params.length > 50 && plain.every((p) => p.some((v) => v !== 0)), "every gradient is set");
  unet.dispose();
});
