/**
 * Typed errors of the evaluation layer: the procedural world's options and the PNG encoder.
 * Messages are sentence case, name what was wrong and what to do, and carry no final period.
 *
 * @module
 */
import { DenoiseError } from "../ops/errors.ts";

/** An option of the procedural world (size, shapes, colours, counts) cannot be honoured. */
export class WorldError extends DenoiseError {}

/** Pixels given to the PNG encoder do not match the stated width and height. */
export class PngError extends DenoiseError {}
