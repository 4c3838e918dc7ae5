/**
 * Typed errors of the trainer's data pipeline and run plumbing. Messages are sentence case, name
 * the file, key or flag that was wrong and what to do, and carry no final period.
 *
 * @module
 */
import { DenoiseError } from "../ops/errors.ts";

/** A training image, caption or data folder cannot be used. */
export class DatasetError extends DenoiseError {}

/** A config file (dataset TOML, run TOML, sample prompts) or a setting is invalid. */
export class ConfigError extends DenoiseError {}
