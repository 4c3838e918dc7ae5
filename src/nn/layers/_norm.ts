// The norm choice of the ResNet blocks: GroupNorm (SD) or BatchNorm2d (the `norm: "batch"` option).
import { BatchNorm2d } from "./batch_norm.ts";
import { GroupNorm } from "./group_norm.ts";

/** Which normalization the ResNet blocks (and the U-Net's output norm) use. */
export type NormKind = "group" | "batch";

/** A norm layer of either kind. */
export type NormLayer = GroupNorm | BatchNorm2d;

/** GroupNorm(groups, channels, eps) or BatchNorm2d(channels) (eps 1e-5, PyTorch's default). */
export function makeNorm(kind: NormKind, groups: number, channels: number, eps: number): NormLayer {
  return kind === "batch" ? new BatchNorm2d(channels) : new GroupNorm(groups, channels, eps);
}
