/**
 * A set of adapters attached to a U-Net and / or text encoder: built from a plan (training) or
 * from file entries (inference), exported back to format-neutral entries.
 *
 * @module
 */
import { Module } from "../nn/module.ts";
import { GroupNorm } from "../nn/layers/group_norm.ts";
import { LayerNorm } from "../nn/layers/layer_norm.ts";
import { tensor } from "../ops/creation.ts";
import { ArgumentError, fmtShape, ShapeError } from "../ops/errors.ts";
import type { HostTensor, LoraComponent, LoraEntry } from "./file_types.ts";
import { kohyaName } from "./formats/names.ts";
import type { LoraModels } from "./formats/model_shapes.ts";
import type { LoraPlan } from "./plan.ts";
import { LoraModule, type LoraModuleOptions } from "./lora_module.ts";
import { NormAdapter } from "./norm_adapter.ts";
import { DeltaAdapter } from "./delta_adapter.ts";
import { WeightCopyAdapter } from "./weight_copy_adapter.ts";
import { flatTo, layerAt, LoraMatchError } from "./_layers.ts";

export { LoraMatchError };

/** An adapter of a network with where it sits. */
export interface PlacedAdapter {
  /** Which model. */
  component: LoraComponent;
  /** The module's diffusers path. */
  path: string;
  /** The adapter. */
  adapter: LoraModule | NormAdapter | DeltaAdapter | WeightCopyAdapter;
}

function host(t: HostTensor, what: string, path: string, shape: readonly number[]): HostTensor {
  if (t.shape.join() !== shape.join()) {
    throw new LoraMatchError(
      `"${path}": ${what} is ${fmtShape(t.shape)} but this module needs ${fmtShape(shape)}; ` +
        "the file was made for a different model",
    );
  }
  for (let i = 0; i < t.data.length; i++) {
    if (!Number.isFinite(t.data[i]!)) {
      throw new ArgumentError(
        `"${path}": ${what} holds ${t.data[i]} at index ${i}; the file is corrupt or was ` +
          "saved from a diverged run",
      );
    }
  }
  return t;
}

/**
 * Adapters attached to a U-Net and a text encoder. Building one freezes the base models, so
 * only the adapters' parameters are trainable; `detach` restores the plain models.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { UNet2DConditionModel } from "../nn/unet.ts";
 * import { makePlan } from "./plan.ts";
 * import { LoraNetwork } from "./network.ts";
 * await getDevice();
 * const unet = new UNet2DConditionModel({
 *   blockOutChannels: [32, 64], layersPerBlock: 1, attentionHeads: 2, crossAttentionDim: 32,
 *   normNumGroups: 8,
 * });
 * const plan = makePlan(unet.config, null, { rank: 4 });
 * const net = LoraNetwork.fromPlan({ unet }, plan);
 * console.log(net.adapters.length, net.trainableParameters().length);
 * ```
 */
export class LoraNetwork extends Module {
  /** Every adapter with its place, in plan order. */
  readonly adapters: PlacedAdapter[] = [];

  /** Adds an adapter under its kohya name and attaches it. */
  add(
    component: LoraComponent,
    path: string,
    adapter: LoraModule | NormAdapter | DeltaAdapter | WeightCopyAdapter,
  ): void {
    this.addModule(kohyaName(component, path), adapter);
    this.adapters.push({ component, path, adapter });
    adapter.attach();
  }

  /**
   * Fresh adapters (down kaiming-uniform, up zero, norm deltas zero) for every plan entry;
   * freezes the given models first.
   */
  static fromPlan(
    models: LoraModels,
    plan: LoraPlan,
    options: LoraModuleOptions = {},
  ): LoraNetwork {
    const layers = plan.entries.map((e) => {
      const layer = layerAt(models, e.component, e.path);
      if (layer.param("weight").shape.join() !== e.shape.join()) {
        throw new LoraMatchError(
          `The plan has "${e.path}" as ${fmtShape(e.shape)} but the model's is ` +
            `${fmtShape(layer.param("weight").shape)}; make the plan from this model's config`,
        );
      }
      return layer;
    });
    models.unet?.freeze();
    models.textEncoder?.freeze();
    const net = new LoraNetwork();
    plan.entries.forEach((e, i) => {
      const layer = layers[i]!;
      const adapter = layer instanceof GroupNorm || layer instanceof LayerNorm
        ? new NormAdapter(
          layer,
          options.multiplier !== undefined ? { multiplier: options.multiplier } : {},
        )
        : new LoraModule(layer, e.rank, e.alpha, options);
      net.add(e.component, e.path, adapter);
    });
    return net;
  }

  /**
   * Adapters holding the weights of file entries of kind `lora` (without a Tucker `mid`) and
   * `norm`; every entry is checked against its module before anything is attached. A missing
   * alpha means scale 1 (alpha = rank).
   */
  static fromEntries(
    models: LoraModels,
    entries: readonly LoraEntry[],
    options: LoraModuleOptions = {},
  ): LoraNetwork {
    const built: [LoraEntry, LoraModule | NormAdapter][] = [];
    try {
      for (const e of entries) built.push([e, adapterFor(models, e, options)]);
    } catch (err) {
      for (const [, a] of built) a.dispose();
      throw err;
    }
    const net = new LoraNetwork();
    for (const [e, a] of built) net.add(e.component, e.path, a);
    return net;
  }

  /** Sets the multiplier of every LoRA and norm adapter (fixed deltas keep theirs). */
  set multiplier(m: number) {
    for (const { adapter } of this.adapters) {
      if (adapter instanceof LoraModule || adapter instanceof NormAdapter) adapter.multiplier = m;
    }
  }

  /** Reattaches every adapter (after `detach`). */
  attach(): void {
    for (const { adapter } of this.adapters) adapter.attach();
  }

  /** Gives every adapted layer its own forward back. */
  detach(): void {
    for (const { adapter } of this.adapters) adapter.detach();
  }

  /** Reads the adapters back from the GPU as format-neutral entries (for the file writers). */
  async entries(): Promise<LoraEntry[]> {
    const out: LoraEntry[] = [];
    for (const { component, path, adapter } of this.adapters) {
      const read = async (name: string): Promise<HostTensor> => {
        const p = adapter.param(name);
        return { shape: [...p.shape], data: await p.value.toArray() };
      };
      if (adapter instanceof DeltaAdapter || adapter instanceof WeightCopyAdapter) {
        throw new ArgumentError(
          `"${path}" holds a fixed weight delta (a composed or LyCORIS entry), which has no ` +
            "LoRA form to export; export the network you trained instead",
        );
      }
      if (adapter instanceof NormAdapter) {
        out.push({
          component,
          path,
          kind: "norm",
          tensors: {},
          wNorm: await read("w_norm"),
          bNorm: await read("b_norm"),
        });
      } else {
        out.push({
          component,
          path,
          kind: "lora",
          tensors: {},
          down: await read("lora_down"),
          up: await read("lora_up"),
          alpha: adapter.alpha,
        });
      }
    }
    return out;
  }

  /** Detaches and frees every adapter. */
  override dispose(): void {
    this.detach();
    super.dispose();
  }
}

function adapterFor(
  models: LoraModels,
  e: LoraEntry,
  options: LoraModuleOptions,
): LoraModule | NormAdapter {
  const layer = layerAt(models, e.component, e.path);
  const w = layer.param("weight").shape;
  if (layer instanceof GroupNorm || layer instanceof LayerNorm) {
    if (e.kind !== "norm") {
      throw new LoraMatchError(`"${e.path}" is a norm, but the file has a ${e.kind} entry for it`);
    }
    const a = new NormAdapter(
      layer,
      options.multiplier !== undefined ? { multiplier: options.multiplier } : {},
    );
    try {
      if (e.wNorm) a.param("w_norm").assign(tensor(host(e.wNorm, "w_norm", e.path, w).data, w));
      if (e.bNorm) a.param("b_norm").assign(tensor(host(e.bNorm, "b_norm", e.path, w).data, w));
    } catch (err) {
      a.dispose();
      throw err;
    }
    return a;
  }
  if (e.kind !== "lora" || e.mid || !e.down || !e.up) {
    throw new LoraMatchError(
      `"${e.path}" is a ${e.kind}${e.mid ? " (Tucker)" : ""} entry; load it as a weight delta ` +
        "(applyLoras) instead of a trainable LoRA",
    );
  }
  const r = e.down.shape[0]!;
  if (e.up.shape[1] !== r) {
    throw new ShapeError(
      `"${e.path}": down ${fmtShape(e.down.shape)} has rank ${r} but up ` +
        `${fmtShape(e.up.shape)} has ${e.up.shape[1]}; the ranks must match`,
    );
  }
  const a = new LoraModule(layer, r, e.alpha ?? r, options);
  try {
    const down = a.param("lora_down"), up = a.param("lora_up");
    const downData = host(flatTo(e.down, down.shape), "lora_down", e.path, down.shape);
    const upData = host(flatTo(e.up, up.shape), "lora_up", e.path, up.shape);
    down.assign(tensor(downData.data, down.shape));
    up.assign(tensor(upData.data, up.shape));
  } catch (err) {
    a.dispose();
    throw err;
  }
  return a;
}
