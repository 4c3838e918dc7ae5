/**
 * Paths of what ships in the repository: the mini SD that `sample`, `eval` and the `train`
 * demo use when no `--model` is given, its batch-norm variant, the concept sets and the
 * attribute classifier.
 *
 * @module
 */
import { isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "./_args.ts";

function shipped(relative: string, what: string): string {
  const url = new URL(`../../${relative}`, import.meta.url);
  if (url.protocol !== "file:") {
    throw new UsageError(
      `The bundled ${what} is only on disk in a clone of the repository (this copy runs from ` +
        `${url.origin}); clone it, or pass the path of your own`,
    );
  }
  return fileURLToPath(url);
}

/**
 * The shipped mini SD diffusers folder (`models/mini_sd`).
 *
 * @example
 * ```ts
 * import { bundledModelDir } from "./bundled.ts";
 * console.log(bundledModelDir().endsWith("mini_sd")); // true
 * ```
 */
export function bundledModelDir(): string {
  return shipped("models/mini_sd", "mini model");
}

/**
 * The shipped batch-norm variant of the mini SD (`models/mini_sd_bn`): the mini SD's VAE and
 * text encoder, its U-Net with BatchNorm2d in place of the ResNet and output GroupNorms,
 * pretrained further on the same procedural stream. The AdaBN ablation's default model.
 *
 * @example
 * ```ts
 * import { bundledBatchNormModelDir } from "./bundled.ts";
 * console.log(bundledBatchNormModelDir().endsWith("mini_sd_bn")); // true
 * ```
 */
export function bundledBatchNormModelDir(): string {
  return shipped("models/mini_sd_bn", "batch-norm mini model");
}

/**
 * The shipped attribute classifier (`models/attribute_classifier.safetensors`).
 *
 * @example
 * ```ts
 * import { bundledClassifierPath } from "./bundled.ts";
 * console.log(bundledClassifierPath().endsWith(".safetensors")); // true
 * ```
 */
export function bundledClassifierPath(): string {
  return shipped("models/attribute_classifier.safetensors", "attribute classifier");
}

/**
 * A shipped kohya dataset folder (`datasets/<name>`, e.g. the `zqstar` concept set).
 *
 * @example
 * ```ts
 * import { bundledDatasetDir } from "./bundled.ts";
 * console.log(bundledDatasetDir("zqstar").endsWith("zqstar")); // true
 * ```
 */
export function bundledDatasetDir(name: string): string {
  return shipped(`datasets/${name}`, `dataset ${name}`);
}

/**
 * A path as a run's records show it: relative to the repository root when it lies inside this
 * clone (`models/mini_sd`), so that committed results name no machine's folders; any other path
 * unchanged.
 *
 * @example
 * ```ts
 * import { bundledModelDir, recordedPath } from "./bundled.ts";
 * console.log(recordedPath(bundledModelDir())); // "models/mini_sd"
 * ```
 */
export function recordedPath(path: string): string {
  const root = new URL("../../", import.meta.url);
  if (root.protocol !== "file:") return path;
  const inside = relative(fileURLToPath(root), resolve(path));
  return inside === "" || inside.startsWith("..") || isAbsolute(inside) ? path : inside;
}
