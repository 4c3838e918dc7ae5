/**
 * The typed error of AdaBN: a model without batch norm, bad timestep bands, a missing or
 * mismatched statistics snapshot, data that cannot be read twice for the exact method.
 *
 * @module
 */
import { DenoiseError } from "../ops/errors.ts";

/** AdaBN was asked for something the model, the bands or the data cannot give. */
export class AdabnError extends DenoiseError {}
