/**
 * The block-wise ablation's conditions: the base model; every adapter alone (identity and style,
 * all blocks and each preset, LoRA and LoCon); and per type the compositions ID + style,
 * block-wise ID + style, ID + block-wise style and both block-wise (the same preset), applied
 * unmerged together. Each condition names the prompt sets it is measured on.
 *
 * @module
 */
import { IDENTITY_CONCEPT, STYLE_CONCEPT } from "../eval/concepts.ts";
import {
  adapterLabel,
  adapterName,
  type AdapterSpec,
  type AdapterType,
  type BlockChoice,
  type BlockwisePreset,
  TYPE_LABEL,
} from "./_blockwise_plan.ts";

/** The prompt sets: each trigger alone, both triggers, and none. */
export type PromptSet = "identity" | "style" | "both" | "plain";

/** One row of the ablation. */
export interface BlockwiseCondition {
  /** Row label, e.g. `LoRA: ID upper + style all`. */
  name: string;
  /** File-name stem of its grids. */
  slug: string;
  /** The adapters applied together (none: the base model). */
  adapters: AdapterSpec[];
  /** The prompt sets it is measured on. */
  sets: PromptSet[];
}

/**
 * Every adapter to train for one seed: per type, the identity then the style concept, each on
 * all blocks and then each preset.
 *
 * @example
 * ```ts
 * import { blockwiseAdapters } from "./_blockwise_conditions.ts";
 * console.log(blockwiseAdapters(["upper", "middle", "lower"], ["lora", "locon"]).length); // 16
 * ```
 */
export function blockwiseAdapters(
  presets: readonly BlockwisePreset[],
  types: readonly AdapterType[],
): AdapterSpec[] {
  const choices: BlockChoice[] = ["all", ...presets];
  return types.flatMap((type) =>
    [IDENTITY_CONCEPT, STYLE_CONCEPT].flatMap((concept) =>
      choices.map((blocks) => ({ concept, blocks, type }))
    )
  );
}

/**
 * The row label of an identity adapter composed with a style adapter of one type.
 *
 * @example
 * ```ts
 * import { compositionName } from "./_blockwise_conditions.ts";
 * console.log(compositionName("locon", "upper", "all")); // "LoCon: ID upper + style all"
 * ```
 */
export function compositionName(type: AdapterType, id: BlockChoice, style: BlockChoice): string {
  return `${TYPE_LABEL[type]}: ID ${id} + style ${style}`;
}

function composition(type: AdapterType, id: BlockChoice, style: BlockChoice): BlockwiseCondition {
  return {
    name: compositionName(type, id, style),
    slug: `${type}_id-${id}_style-${style}`,
    adapters: [
      { concept: IDENTITY_CONCEPT, blocks: id, type },
      { concept: STYLE_CONCEPT, blocks: style, type },
    ],
    sets: ["both", "plain"],
  };
}

/**
 * The rows: the base model (every prompt set), each adapter alone (its trigger's prompts and the
 * prompts without triggers), then per type ID + style on all blocks and, per preset, block-wise
 * ID + style, ID + block-wise style and both block-wise (prompts with both triggers, and without).
 *
 * @example
 * ```ts
 * import { blockwiseConditions } from "./_blockwise_conditions.ts";
 * const rows = blockwiseConditions(["upper", "middle", "lower"], ["lora", "locon"]);
 * console.log(rows.length); // 1 + 16 + 2 * (1 + 3 * 3) = 37
 * ```
 */
export function blockwiseConditions(
  presets: readonly BlockwisePreset[],
  types: readonly AdapterType[],
): BlockwiseCondition[] {
  const alone = blockwiseAdapters(presets, types).map((spec) => ({
    name: adapterLabel(spec),
    slug: adapterName(spec),
    adapters: [spec],
    sets: [spec.concept === IDENTITY_CONCEPT ? "identity" : "style", "plain"] as PromptSet[],
  }));
  const composed = types.flatMap((type) => [
    composition(type, "all", "all"),
    ...presets.flatMap((p) => [
      composition(type, p, "all"),
      composition(type, "all", p),
      composition(type, p, p),
    ]),
  ]);
  return [
    {
      name: "base model",
      slug: "base",
      adapters: [],
      sets: ["identity", "style", "both", "plain"],
    },
    ...alone,
    ...composed,
  ];
}
