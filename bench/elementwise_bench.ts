// Elementwise and reduction benches (GB/s counts bytes read + written).
import { add, gelu, mul, randn, silu, sum, type Tensor } from "../mod.ts";
import { benchOp } from "./_bench.ts";

const n = 16 * 1024 * 1024;
let y: Tensor | null = null;
const keep = (t: Tensor) => {
  y?.dispose();
  y = t;
};
benchOp({
  group: "elementwise",
  name: "add f32 16M",
  work: { bytes: 3 * 4 * n },
  baseline: true,
  setup: () => {
    const a = randn([n]), b = randn([n]);
    return Promise.resolve(() => keep(add(a, b)));
  },
});
benchOp({
  group: "elementwise",
  name: "mul f32 2x320x64x64 by 320x1x1 (broadcast)",
  work: { bytes: 2 * 4 * 2 * 320 * 64 * 64 },
  setup: () => {
    const a = randn([2, 320, 64, 64]), b = randn([320, 1, 1]);
    return Promise.resolve(() => keep(mul(a, b)));
  },
});
for (const [name, f] of [["silu", silu], ["gelu", gelu]] as const) {
  benchOp({
    group: "elementwise",
    name: `${name} f32 4M`,
    work: { bytes: 2 * 4 * 4 * 1024 * 1024 },
    setup: () => {
      const a = randn([4 * 1024 * 1024]);
      return Promise.resolve(() => keep(f(a)));
    },
  });
}
benchOp({
  group: "reduce",
  name: "sum f32 2x320x4096 over last axis",
  work: { bytes: 4 * 2 * 320 * 4096 },
  setup: () => {
    const a = randn([2, 320, 4096]);
    return Promise.resolve(() => keep(sum(a, -1)));
  },
});
benchOp({
  group: "reduce",
  name: "sum f32 16M to a scalar",
  work: { bytes: 4 * n },
  setup: () => {
    const a = randn([n]);
    return Promise.resolve(() => keep(sum(a)));
  },
});
benchOp({
  group: "reduce",
  name: "sum f32 16x128x16x16 over 0,2,3 (conv bias gradient)",
  work: { bytes: 4 * 16 * 128 * 256 },
  setup: () => {
    const a = randn([16, 128, 16, 16]);
    return Promise.resolve(() => keep(sum(a, [0, 2, 3])));
  },
});
benchOp({
  group: "reduce",
  name: "sum f32 4096x512 over 0 (linear bias gradient)",
  work: { bytes: 4 * 4096 * 512 },
  setup: () => {
    const a = randn([4096, 512]);
    return Promise.resolve(() => keep(sum(a, 0)));
  },
});
benchOp({
  group: "elementwise",
  name: "add f32 4096x322 + 322 (bias broadcast, scalar band kernel)",
  work: { bytes: 4 * (2 * 4096 * 322 + 322) },
  setup: () => {
    const a = randn([4096, 322]), b = randn([322]);
    return Promise.resolve(() => keep(add(a, b)));
  },
});
