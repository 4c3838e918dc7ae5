// A convolution's sizes, shared by conv2d and its backward products, and the params order of the
// im2col / col2im kernels (`CONV_PARAMS` in src/wgsl/conv.ts).

/** A convolution's sizes, as conv2d computes them. */
export interface ConvGeometry {
  B: number;
  C: number;
  H: number;
  W: number;
  kh: number;
  kw: number;
  stride: number;
  pad: number;
  Ho: number;
  Wo: number;
}

/** The conv kernels' params: `n` (their element or row count), then the geometry. */
export function geometryParams(g: ConvGeometry, n: number): number[] {
  return [n, g.C, g.H, g.W, g.kh, g.kw, g.stride, g.pad, g.Ho, g.Wo];
}
