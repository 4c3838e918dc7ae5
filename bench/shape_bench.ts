// Benches of the data-movement ops and the MSE loss. Every op here is memory bound: GB/s =
// (bytes read + bytes written) / time, noted per entry (f32 = 4 bytes per element).
import {
  backward,
  cast,
  concat,
  deviceInfo,
  embedding,
  getDevice,
  mseLoss,
  permute,
  randn,
  slice,
  sync,
  type Tensor,
  upsampleNearest2x,
} from "../mod.ts";

await getDevice();

function bench(
  group: string,
  name: string,
  make: () => Tensor[],
  run: (xs: Tensor[]) => Tensor,
  baseline = false,
): void {
  Deno.bench({
    group,
    name,
    baseline,
    n: 10,
    warmup: 2,
    fn: async (b) => {
      const xs = make();
      await sync();
      b.start();
      const y = run(xs);
      await sync();
      b.end();
      y.dispose();
      for (const x of xs) x.dispose();
    },
  });
}

// 2 * 320 * 64 * 64 = 2.62M elements: 21 MB moved
bench(
  "permute",
  "permute f32 2x320x64x64 (0,2,3,1)",
  () => [randn([2, 320, 64, 64])],
  ([x]) => permute(x!, [0, 2, 3, 1]),
  true,
);
bench(
  "permute",
  "permute f32 2x64x64x320 (0,3,1,2)",
  () => [randn([2, 64, 64, 320])],
  ([x]) => permute(x!, [0, 3, 1, 2]),
);
// attention head split [B, T, heads, dh] -> [B, heads, T, dh]: 2 * 77 * 8 * 40 elements, 0.4 MB moved
bench(
  "permute",
  "permute f32 2x77x8x40 (0,2,1,3)",
  () => [randn([2, 77, 8, 40])],
  ([x]) => permute(x!, [0, 2, 1, 3]),
);

// the small U-Net's head split at batch 16: [16, 256, 4, 16] -> [16, 4, 256, 16], 2 MB moved
bench(
  "permute",
  "permute f32 16x256x4x16 (0,2,1,3)",
  () => [randn([16, 256, 4, 16])],
  ([x]) => permute(x!, [0, 2, 1, 3]),
);

// UNet skip concat: 2 * 2 * 640 * 32 * 32 elements: 21 MB moved
bench(
  "concat",
  "concat f32 2x320x32x32 + 2x320x32x32 axis 1",
  () => [randn([2, 320, 32, 32]), randn([2, 320, 32, 32])],
  (xs) => concat(xs, 1),
  true,
);
// 10.5 MB moved
bench(
  "concat",
  "slice f32 2x640x32x32 axis 1 0..320",
  () => [randn([2, 640, 32, 32])],
  ([x]) => slice(x!, 1, 0, 320),
);
// the backward of that slice (zero-padded scatter): 2.6 MB read + 5.2 MB written
bench(
  "concat",
  "slice backward f32 2x320x32x32 into 2x640x32x32",
  () => {
    const x = randn([2, 640, 32, 32]);
    x.requiresGrad = true;
    return [x, randn([2, 320, 32, 32])];
  },
  ([x, dy]) => {
    backward(slice(x!, 1, 0, 320), dy);
    const g = x!.grad!;
    x!.grad = null;
    return g;
  },
);

// 2 * 320 * 32 * 32 in, 4x out: 13 MB moved
bench(
  "upsample",
  "upsample f32 2x320x32x32",
  () => [randn([2, 320, 32, 32])],
  ([x]) => upsampleNearest2x(x!),
  true,
);
bench(
  "upsample",
  "upsample backward f32 2x320x64x64 -> 2x320x32x32",
  () => {
    const x = randn([2, 320, 32, 32]);
    x.requiresGrad = true;
    return [x, randn([2, 320, 64, 64])];
  },
  ([x, dy]) => {
    backward(upsampleNearest2x(x!), dy);
    const g = x!.grad!;
    x!.grad = null;
    return g;
  },
);

// CLIP's 49408 x 768 f32 table (152 MB) is over the 128 MiB binding limit of the software
// adapters, so the f32 entry uses 32768 rows; the f16 entry uses the full table (76 MB).
// Forward: 154 * 768 rows gathered = 0.95 MB moved. Backward writes the whole table.
const ids = Array.from({ length: 154 }, (_, i) => (i * 7919) % 32768);
bench(
  "embedding",
  "embedding f32 32768x768 ids 2x77 (vocab cut from 49408 to fit the 128 MiB binding)",
  () => [randn([32768, 768])],
  ([w]) => embedding(w!, ids, [2, 77]),
  true,
);
if (deviceInfo().f16) {
  bench(
    "embedding",
    "embedding f16 49408x768 ids 2x77",
    () => [randn([49408, 768], { dtype: "f16" })],
    ([w]) => embedding(w!, ids, [2, 77]),
  );
}
bench(
  "embedding",
  "embedding backward f32 32768x768 ids 2x77 (writes the 100 MB table)",
  () => {
    const w = randn([32768, 768]);
    w.requiresGrad = true;
    return [w, randn([2, 77, 768])];
  },
  ([w, dy]) => {
    backward(embedding(w!, ids, [2, 77]), dy);
    const g = w!.grad!;
    w!.grad = null;
    return g;
  },
);

// 2 * 4 * 64 * 64 = 32768 elements per operand
bench(
  "mse",
  "mse f32 2x4x64x64",
  () => [randn([2, 4, 64, 64]), randn([2, 4, 64, 64]), randn([2])],
  ([p, t, w]) => mseLoss(p!, t!, { weight: w! }),
  true,
);
bench(
  "mse",
  "mse forward+backward f32 2x4x64x64",
  () => {
    const p = randn([2, 4, 64, 64]);
    p.requiresGrad = true;
    return [p, randn([2, 4, 64, 64]), randn([2])];
  },
  ([p, t, w]) => {
    backward(mseLoss(p!, t!, { weight: w! }));
    const g = p!.grad!;
    p!.grad = null;
    return g;
  },
);

if (deviceInfo().f16) {
  // 2.62M elements: 10.5 MB read + 5.2 MB written
  bench(
    "cast",
    "cast f32->f16 2x320x64x64",
    () => [randn([2, 320, 64, 64])],
    ([x]) => cast(x!, "f16"),
    true,
  );
  // f16 -> f32 four at a time (unpack2x16float): 5.2 MB read + 10.5 MB written
  bench(
    "cast",
    "cast f16->f32 2x320x64x64",
    () => [cast(randn([2, 320, 64, 64]), "f16")],
    ([x]) => cast(x!, "f32"),
    true,
  );
}
