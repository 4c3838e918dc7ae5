/**
 * Image decoding for training through sharp (libvips; pinned in deno.json): JPEG, PNG, WebP, AVIF,
 * TIFF and GIF; EXIF orientation applied, alpha composited on white, 16-bit and grayscale converted
 * to 8-bit sRGB, Lanczos resizing, then the bucket's centre crop.
 *
 * @module
 */
import sharp from "sharp";
import type { BucketChoice, Size } from "./buckets.ts";
import { cropOffsets } from "./buckets.ts";
import { DatasetError } from "./errors.ts";

/** File extensions listed as images (kohya's list plus AVIF); BMP is listed and then refused. */
export const IMAGE_EXTENSIONS: readonly string[] = [
  ".png",
  ".jpg",
  ".jpeg",
  ".webp",
  ".bmp",
  ".avif",
];

function fail(path: string, e: unknown): never {
  if (e instanceof DatasetError) throw e;
  const why = e instanceof Error ? e.message.split("\n")[0]! : String(e);
  throw new DatasetError(
    `Cannot read the image ${path} (${why}); replace the file with a valid JPEG, PNG or WebP, or remove it`,
  );
}

function refuseBmp(path: string): void {
  if (path.toLowerCase().endsWith(".bmp")) {
    throw new DatasetError(
      `The image ${path} is a BMP, which the decoder (sharp) does not read; convert it to PNG`,
    );
  }
}

/**
 * Decodes the whole image once (so a truncated or corrupt file fails now, not mid-run) and returns
 * its size after EXIF orientation.
 *
 * @example
 * ```ts
 * import { checkImage } from "./images_fs.ts";
 * const [w, h] = await checkImage("photo.jpg");
 * ```
 */
export async function checkImage(path: string): Promise<Size> {
  refuseBmp(path);
  try {
    const { info } = await sharp(path, { failOn: "warning" }).autoOrient().raw()
      .toBuffer({ resolveWithObject: true });
    return [info.width, info.height];
  } catch (e) {
    fail(path, e);
  }
}

// image file -> [3, H, W] with H, W the bucket size, values in [-1, 1]
/**
 * Loads an image for its bucket: orient, composite alpha on white, convert to 8-bit sRGB, resize
 * to `choice.resized` with Lanczos-3, centre-crop to `choice.bucket`, optionally mirror.
 *
 * @example
 * ```ts
 * import { BucketSelector } from "./buckets.ts";
 * import { loadTrainingImage } from "./images_fs.ts";
 * const choice = new BucketSelector({ resolution: [512, 512] }).select([800, 600]);
 * const chw = await loadTrainingImage("photo.jpg", choice); // Float32Array of 3 * 512 * 512
 * ```
 */
export async function loadTrainingImage(
  path: string,
  choice: BucketChoice,
  options: { flip?: boolean } = {},
): Promise<Float32Array> {
  refuseBmp(path);
  const [bw, bh] = choice.bucket, [rw, rh] = choice.resized;
  const { left, top } = cropOffsets(choice.resized, choice.bucket);
  let data: Uint8Array;
  try {
    let img = sharp(path, { failOn: "warning" }).autoOrient()
      .flatten({ background: "#ffffff" })
      .toColourspace("srgb")
      .resize(rw, rh, { fit: "fill", kernel: "lanczos3" })
      .extract({ left, top, width: bw, height: bh });
    if (options.flip) img = img.flop();
    const out = await img.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
    if (out.info.channels !== 3 || out.info.width !== bw || out.info.height !== bh) {
      throw new Error(
        `decoded ${out.info.width}x${out.info.height}x${out.info.channels}, expected ${bw}x${bh}x3`,
      );
    }
    data = out.data;
  } catch (e) {
    fail(path, e);
  }
  const plane = bw * bh;
  const chw = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) chw[c * plane + i] = data[i * 3 + c]! / 127.5 - 1;
  }
  return chw;
}
