/**
 * `--original-config` for single-file checkpoints: the LDM YAML named on the command line, or
 * the `.yaml` beside the checkpoint (`model.safetensors` -> `model.yaml`, as AUTOMATIC1111 looks
 * for it), read, parsed and checked against the checkpoint's tensors.
 *
 * @module
 */
import { parseYaml, YamlError } from "../nn/yaml_subset.ts";
import {
  checkAgainstTensors,
  LdmConfigError,
  type LdmSettings,
  ldmSettings,
} from "../nn/ldm_config.ts";
import { SafetensorsFile } from "../nn/safetensors_fs.ts";
import { inferUNetConfig, inferVaeConfig } from "../nn/checkpoint_keys.ts";
import { quote } from "../nn/_untrusted.ts";

/**
 * The LDM settings for `model`: from `explicit` when given (it must exist), else from the `.yaml`
 * beside a single-file model if there is one, else undefined (diffusers folders carry their own
 * configs). Errors name the file and, for contradictions, the YAML path and both values.
 */
export async function readOriginalConfig(
  model: string,
  explicit: string | undefined,
): Promise<LdmSettings | undefined> {
  const isFile = await Deno.stat(model).then((s) => s.isFile, () => false);
  let path = explicit;
  if (path === undefined) {
    if (!isFile) return undefined;
    const beside = model.replace(/\.[^./]*$/u, "") + ".yaml";
    if (!(await Deno.stat(beside).then((s) => s.isFile, () => false))) return undefined;
    path = beside;
  }
  const name = `The config ${quote(path, 200)}`;
  let text: string;
  try {
    if (!(await Deno.stat(path)).isFile) throw new Error("not a regular file");
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new LdmConfigError(`${name} cannot be read (${quote((e as Error).message)})`);
  }
  let yaml;
  try {
    yaml = parseYaml(text);
  } catch (e) {
    if (e instanceof YamlError) {
      throw new LdmConfigError(`${name} is not YAML this reader understands: ${e.message}`);
    }
    throw e;
  }
  const settings = ldmSettings(yaml, name);
  if (isFile) {
    using file = await SafetensorsFile.open(model);
    checkAgainstTensors(settings, { unet: inferUNetConfig(file), vae: inferVaeConfig(file) }, name);
  }
  return settings;
}
