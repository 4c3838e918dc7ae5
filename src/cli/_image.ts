/**
 * RGB images to file bytes: baseline JPEG (jpeg-js) or PNG (the encoder in src/eval/png.ts),
 * chosen by the output file's extension.
 *
 * @module
 */
import jpeg from "jpeg-js";
import { UsageError } from "./_args.ts";
import { quote } from "../nn/_untrusted.ts";
import { encodePng } from "../eval/png.ts";

/** An 8-bit RGB image, row-major, `height x width x 3` bytes. */
export interface RgbImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** The pixels. */
  rgb: Uint8Array;
}

/** The image formats `sample` writes. */
export type ImageFormat = "jpeg" | "png";

const EXTENSIONS: Readonly<Record<string, ImageFormat>> = {
  ".jpg": "jpeg",
  ".jpeg": "jpeg",
  ".png": "png",
};

/** The format an output path's extension names; a {@link UsageError} for any other. */
export function imageFormat(path: string): ImageFormat {
  const dot = path.lastIndexOf(".");
  const ext = dot > path.lastIndexOf("/") ? path.slice(dot).toLowerCase() : "";
  const format = EXTENSIONS[ext];
  if (!format) {
    throw new UsageError(
      `The output ${quote(path)} must end in .png, .jpg or .jpeg, which name the image format ` +
        "to write",
    );
  }
  return format;
}

/** Encodes RGB bytes as a baseline JPEG (jpeg-js). */
export function encodeJpeg(image: RgbImage, quality = 92): Uint8Array {
  const { width, height, rgb } = image;
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba[4 * i] = rgb[3 * i]!;
    rgba[4 * i + 1] = rgb[3 * i + 1]!;
    rgba[4 * i + 2] = rgb[3 * i + 2]!;
    rgba[4 * i + 3] = 255;
  }
  return new Uint8Array(jpeg.encode({ data: rgba, width, height }, quality).data);
}

/** Encodes an image in `format`. */
export function encodeImage(image: RgbImage, format: ImageFormat): Promise<Uint8Array> {
  return format === "png"
    ? encodePng(image.rgb, image.width, image.height)
    : Promise.resolve(encodeJpeg(image));
}
