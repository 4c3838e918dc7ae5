/**
 * Typed errors of the model layer: safetensors files, the tokenizer and module state dicts.
 * Messages are sentence case, name the file, tensor or key and what to do, and carry no final
 * period.
 *
 * @module
 */
import { DenoiseError } from "../ops/errors.ts";

/** A safetensors file or buffer is malformed, truncated, or lacks a requested tensor. */
export class SafetensorsError extends DenoiseError {}

/** A tokenizer vocabulary or merges file is malformed, or an encode option is invalid. */
export class TokenizerError extends DenoiseError {}

/** A state dict does not fit a module: missing or unexpected keys, or mismatched shapes. */
export class StateDictError extends DenoiseError {}
