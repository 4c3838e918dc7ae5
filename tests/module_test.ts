// The module system: diffusers-style parameter paths, state dicts through safetensors files,
// strict-load errors, freezing, in-place child replacement and disposal.
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import {
  Module,
  ModuleList,
  Parameter,
  SafetensorsReader,
  serializeSafetensors,
  StateDictError,
  toSafetensorsInputs,
} from "../src/nn/mod.ts";
import { SafetensorsFile, writeSafetensors } from "../src/nn/mod_fs.ts";
import { getDevice } from "../src/ops/device.ts";
import { tensor, zeros } from "../src/ops/creation.ts";
import { ArgumentError, ShapeError } from "../src/ops/errors.ts";
import { scope } from "../src/ops/scope.ts";
import type { Tensor } from "../src/ops/tensor.ts";

await getDevice();

let seed = 1;
function values(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => Math.fround(Math.sin(seed++) * 2));
}

// Fixtures: parameter holders named like diffusers layers (no forward math needed here).
class Conv extends Module {
  constructor(cin: number, cout: number, k: number, bias = true) {
    super();
    this.addParameter("weight", tensor(values(cout * cin * k * k), [cout, cin, k, k]));
    if (bias) this.addParameter("bias", tensor(values(cout), [cout]));
  }
}
class Norm extends Module {
  constructor(c: number) {
    super();
    this.addParameter("weight", tensor(values(c), [c]));
    this.addParameter("bias", tensor(values(c), [c]));
    this.addBuffer("running_mean", zeros([c]));
  }
}
class Resnet extends Module {
  constructor(cin: number, cout: number) {
    super();
    this.addModule("norm1", new Norm(cin));
    this.addModule("conv1", new Conv(cin, cout, 3));
    if (cin !== cout) this.addModule("conv_shortcut", new Conv(cin, cout, 1));
  }
  /** Reached through the registry, so a `setChild` replacement takes effect. */
  get conv1(): Module {
    return this.child("conv1");
  }
}
class Down extends Module {
  constructor(cin: number, cout: number) {
    super();
    this.addModule("resnets", new ModuleList([new Resnet(cin, cout), new Resnet(cout, cout)]));
  }
}
class Net extends Module {
  constructor() {
    super();
    this.addModule("conv_in", new Conv(1, 2, 3));
    this.addModule("down_blocks", new ModuleList([new Down(2, 3), new Down(3, 3)]));
  }
}

const NET_KEYS = [
  "conv_in.weight",
  "conv_in.bias",
  ...[0, 1].flatMap((b) =>
    [0, 1].flatMap((r) => {
      const p = `down_blocks.${b}.resnets.${r}`;
      const shortcut = b === 0 && r === 0
        ? [`${p}.conv_shortcut.weight`, `${p}.conv_shortcut.bias`]
        : [];
      return [
        `${p}.norm1.weight`,
        `${p}.norm1.bias`,
        `${p}.norm1.running_mean`,
        `${p}.conv1.weight`,
        `${p}.conv1.bias`,
        ...shortcut,
      ];
    })
  ),
];

function isStateDictError(...parts: string[]): (e: unknown) => boolean {
  return (e: unknown) => {
    ok(e instanceof StateDictError, `expected StateDictError, got ${e}`);
    ok(/^[A-Z]/.test(e.message) && !e.message.endsWith("."), e.message);
    for (const p of parts) ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  };
}

async function snapshot(m: Module): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of m.stateDict()) out.set(k, await t.toArray());
  return out;
}

Deno.test("Module paths equal diffusers state-dict keys", () => {
  using net = new Net();
  const names = net.namedParameters().map(([k]) => k);
  deepEqual(names, NET_KEYS.filter((k) => !k.endsWith("running_mean")));
  deepEqual(
    net.namedBuffers().map(([k]) => k),
    NET_KEYS.filter((k) => k.endsWith("running_mean")),
  );
  deepEqual([...net.stateDict().keys()].sort(), [...NET_KEYS].sort());
  equal(net.parameters().length, names.length);
  deepEqual(net.stateDict().get("down_blocks.0.resnets.0.conv1.weight")?.shape, [3, 2, 3, 3]);
  deepEqual(
    net.namedModules().map(([k]) => k).slice(0, 6),
    [
      "",
      "conv_in",
      "down_blocks",
      "down_blocks.0",
      "down_blocks.0.resnets",
      "down_blocks.0.resnets.0",
    ],
  );
  ok(net.getChild("down_blocks.1.resnets.0.norm1") instanceof Norm);
  equal(net.getChild("down_blocks.2"), undefined);
  equal(net.getChild("conv_in.weight"), undefined);
  const list = net.child<ModuleList<Down>>("down_blocks");
  equal(list.length, 2);
  equal([...list].length, 2);
  ok(list.at(1) instanceof Down);
  equal(net.child("conv_in").param("bias").shape[0], 2);
  throws(() => net.child("nope"), ArgumentError);
  throws(() => net.child("conv_in").param("nope"), /has no parameter or buffer "nope"/);
});

Deno.test("a state dict round-trips through a safetensors file", async () => {
  using a = new Net();
  using b = new Net();
  const want = await snapshot(a);
  const dir = await Deno.makeTempDir({ prefix: "denoise_mod_" });
  try {
    const path = `${dir}/net.safetensors`;
    await writeSafetensors(path, await toSafetensorsInputs(a.stateDict()), { arch: "Net" });
    using file = await SafetensorsFile.open(path);
    deepEqual([...file.keys].sort(), [...NET_KEYS].sort());
    const result = await b.loadSafetensors(file);
    deepEqual(result, { missing: [], unexpected: [] });
    deepEqual(await snapshot(b), want);
    // the loaded tensors are fresh leaves with the parameters' flags
    ok(b.stateDict().get("conv_in.weight")!.requiresGrad);
    ok(!b.stateDict().get("down_blocks.0.resnets.0.norm1.running_mean")!.requiresGrad);
    // F16 storage: values round to f16
    const path16 = `${dir}/net16.safetensors`;
    await writeSafetensors(path16, await toSafetensorsInputs(a.stateDict(), { dtype: "F16" }));
    using file16 = await SafetensorsFile.open(path16);
    await b.loadSafetensors(file16);
    const got16 = await snapshot(b);
    for (const [k, v] of want) deepEqual(got16.get(k), Float32Array.from(v, Math.f16round), k);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadStateDict() copies by default and adopts tensors with copy: false", async () => {
  using a = new Net();
  using b = new Net();
  const want = await snapshot(a);
  b.loadStateDict(a.stateDict());
  a.dispose(); // b holds copies, so freeing a does not touch b
  deepEqual(await snapshot(b), want);
  const w = tensor([1, 2], [2]);
  const old = b.child("conv_in").param("bias").value;
  b.loadStateDict({ "conv_in.bias": w }, { strict: false, copy: false });
  equal(b.child("conv_in").param("bias").value, w);
  ok(old.disposed, "the replaced tensor is freed");
  ok(w.requiresGrad, "the adopted tensor takes the parameter's trainable flag");
});

Deno.test("strict loading lists missing and unexpected keys and changes nothing", async () => {
  using net = new Net();
  const before = await snapshot(net);
  const full = new Map(net.stateDict());
  const partial = new Map(full);
  partial.delete("conv_in.bias");
  partial.delete("down_blocks.1.resnets.1.conv1.weight");
  partial.set("conv_out.weight", zeros([1]));
  throws(
    () => net.loadStateDict(partial),
    isStateDictError(
      "Net",
      "2 missing keys",
      '"conv_in.bias"',
      '"down_blocks.1.resnets.1.conv1.weight"',
      '1 unexpected keys ("conv_out.weight")',
      "strict: false",
    ),
  );
  deepEqual(await snapshot(net), before);
  // more than three keys: the first three and a count
  throws(
    () => net.loadStateDict(new Map()),
    isStateDictError(`${NET_KEYS.length} missing keys`, '"conv_in.weight", "conv_in.bias"', "..."),
  );
  // non-strict: the rest loads, and the skipped keys come back
  const loaded = net.loadStateDict(partial, { strict: false });
  deepEqual(loaded, {
    missing: ["conv_in.bias", "down_blocks.1.resnets.1.conv1.weight"],
    unexpected: ["conv_out.weight"],
  });
  deepEqual(await snapshot(net), before);
});

Deno.test("shape mismatches fail even when not strict, naming both shapes", async () => {
  using net = new Net();
  const before = await snapshot(net);
  const state = new Map(net.stateDict());
  state.set("down_blocks.0.resnets.0.conv1.weight", zeros([3, 2, 1, 1]));
  for (const strict of [true, false]) {
    throws(
      () => net.loadStateDict(state, { strict }),
      isStateDictError(
        "1 shape mismatches",
        '"down_blocks.0.resnets.0.conv1.weight" is [3, 2, 3, 3] here but [3, 2, 1, 1] there',
      ),
    );
  }
  deepEqual(await snapshot(net), before);
  // the same check runs on a file's header before any tensor is read
  const bytes = serializeSafetensors({
    "conv_in.weight": { data: new Float32Array(9), shape: [9] },
  });
  using file = await SafetensorsReader.fromBytes(bytes, "small.safetensors");
  await rejects(
    net.loadSafetensors(file, { strict: false }),
    isStateDictError('"small.safetensors"', '"conv_in.weight" is [2, 1, 3, 3] here but [9]'),
  );
  await rejects(net.loadSafetensors(file), isStateDictError(`${NET_KEYS.length - 1} missing keys`));
  deepEqual(await snapshot(net), before);
});

Deno.test("freeze() and unfreeze() set trainable flags and requiresGrad", () => {
  using net = new Net();
  const n = net.parameters().length;
  equal(net.trainableParameters().length, n);
  net.freeze();
  equal(net.trainableParameters().length, 0);
  ok(net.parameters().every((p) => !p.value.requiresGrad));
  net.child("conv_in").unfreeze();
  deepEqual(
    net.namedParameters().filter(([, p]) => p.trainable).map(([k]) => k),
    ["conv_in.weight", "conv_in.bias"],
  );
  net.unfreeze();
  equal(net.trainableParameters().length, n);
  // buffers are never trainable
  ok(net.namedBuffers().every(([, p]) => !p.trainable && !p.value.requiresGrad));
  // train / eval reach every descendant
  net.eval();
  ok(net.namedModules().every(([, m]) => !m.training));
  net.train();
  ok(net.getChild("down_blocks.1.resnets.1.norm1")!.training);
});

Deno.test("setChild() replaces a layer in place, keeping its state-dict path", () => {
  using net = new Net();
  class Wrapper extends Module {
    constructor(readonly base: Module) {
      super();
      this.addParameter("lora_down", zeros([1, 2]));
    }
  }
  const path = "down_blocks.0.resnets.1.conv1";
  const resnet = net.child<Resnet>("down_blocks.0.resnets.1");
  const base = resnet.conv1;
  const wrapper = new Wrapper(base);
  const old = net.setChild(path, wrapper);
  equal(old, base);
  equal(net.getChild(path), wrapper);
  equal(resnet.conv1, wrapper, "a getter-based layer sees the replacement");
  const keys = [...net.stateDict().keys()];
  ok(keys.includes(`${path}.lora_down`));
  ok(!keys.includes(`${path}.weight`));
  // top-level and list children too
  const conv = net.child("conv_in");
  equal(net.setChild("conv_in", new Conv(1, 2, 3)), conv);
  conv.dispose();
  base.dispose();
  throws(() => net.setChild("down_blocks.0.resnets.9", new Module()), /no child/);
  throws(() => net.setChild("nope", new Module()), ArgumentError);
});

Deno.test("registering a bad or duplicate name throws ArgumentError", () => {
  using m = new Module();
  m.addParameter("weight", zeros([1]));
  throws(() => m.addParameter("weight", zeros([1])), /already has a member named "weight"/);
  throws(() => m.addModule("weight", new Module()), ArgumentError);
  throws(() => m.addBuffer("a.b", zeros([1])), /without dots/);
  throws(() => m.addModule("", new Module()), ArgumentError);
});

Deno.test("Parameter survives scope(), checks shapes on assign, and dispose frees it", () => {
  let kept: Module | null = null;
  scope(() => {
    kept = new Module();
    kept.addParameter("w", tensor([1, 2, 3], [3]));
  });
  const p = kept!.param("w");
  ok(!p.value.disposed, "a parameter outlives the scope it was created in");
  throws(() => p.assign(zeros([4])), ShapeError);
  const t: Tensor = p.value;
  kept!.dispose();
  ok(t.disposed);
  const q = new Parameter(zeros([2]), { trainable: false });
  ok(!q.value.requiresGrad);
  q.trainable = true;
  ok(q.value.requiresGrad);
  q.dispose();
});
