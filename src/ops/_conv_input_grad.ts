// The input gradient of a stride-1 convolution as a convolution of the output gradient with the
// flipped, channel-swapped weight (padding kh - 1 - pad), for software adapters: im2col goes
// straight into the texture matmul's operand, so the input gradient needs neither the
// C kh kw x Ho Wo column buffer of `W^T dy` nor the col2im pass that folds it back.
import { cachedKernel } from "../wgsl/builder.ts";
import { convWeightFlipKernel } from "../wgsl/conv.ts";
import { EW_GROUP } from "../wgsl/elementwise.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { type DType, Tensor } from "./tensor.ts";
import { textureVariant } from "./_texture_matmul.ts";
import type { ConvGeometry } from "./_conv_geometry.ts";
import type { MatmulVariant } from "./matmul.ts";

/** Whether the input gradient runs as a transposed convolution on the texture matmul. */
export function transposedConvFits(
  g: ConvGeometry,
  Cout: number,
  variant: MatmulVariant,
): boolean {
  return g.stride === 1 && g.kh === g.kw && g.pad <= g.kh - 1 &&
    textureVariant(g.C, g.H * g.W, Cout * g.kh * g.kw, variant);
}

// w: [Cout, Cin, kh, kw] -> wf: [Cin, Cout, kh, kw] (tapsMajor: [Cin, kh, kw, Cout]) (dtype)
/**
 * The transposed convolution's weight: channels swapped, each kernel turned 180 degrees, stored
 * as `dtype` (an f16 weight written f32 packs as one copy on the texture path); `tapsMajor`
 * orders each row by tap, then channel (the copied im2col's column order).
 */
export function flippedWeight(w: Tensor, dtype: DType = w.dtype, tapsMajor = false): Tensor {
  const [Cout, Cin, kh, kw] = w.shape as [number, number, number, number];
  const wf = new Tensor(tapsMajor ? [Cin, kh, kw, Cout] : [Cin, Cout, kh, kw], dtype);
  const k = cachedKernel(
    `conv weight flip ${w.dtype} ${dtype} ${tapsMajor}`,
    () => convWeightFlipKernel(w.dtype, dtype, tapsMajor),
  );
  const n = tapsMajor ? Cin * kh * kw : wf.size; // taps-major: one invocation a row
  dispatch(k, [w.binding, wf.binding], [n, Cout, Cin, kh * kw], grid1d(Math.ceil(n / EW_GROUP)));
  return wf;
}
