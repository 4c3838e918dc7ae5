// Matmul benches: both kernel variants and the peer library @jax-js/jax on the same adapter.
import { defaultDevice, init, numpy as np } from "@jax-js/jax";
import { matmul, randn, type Tensor } from "../mod.ts";
import { benchOp } from "./_bench.ts";

const sizes: [number, number, number][] = [[256, 256, 256], [1024, 1024, 1024], [4096, 320, 320]];

for (const [M, N, K] of sizes) {
  const shape = `${M}x${N}x${K}`;
  const flops = 2 * M * N * K;
  for (const variant of ["texture", "tiled"] as const) {
    benchOp({
      group: `matmul ${shape}`,
      name: `matmul f32 ${shape} ${variant}`,
      work: { flops },
      baseline: variant === "texture",
      n: M * N * K >= 2 ** 30 ? 10 : undefined,
      setup: () => {
        const a = randn([M, K]), b = randn([K, N]);
        let c: Tensor | null = null;
        return Promise.resolve(() => {
          c?.dispose();
          c = matmul(a, b, { variant });
        });
      },
    });
  }
  benchOp({
    group: `matmul ${shape}`,
    name: `jax-js matmul f32 ${shape}`,
    work: { flops },
    n: M * N * K >= 2 ** 30 ? 10 : undefined,
    setup: async () => {
      const devices = await init();
      if (!devices.includes("webgpu")) throw new Error("jax-js found no WebGPU device");
      defaultDevice("webgpu");
      const a = np.array(Float32Array.from({ length: M * K }, Math.random)).reshape([M, K]);
      const b = np.array(Float32Array.from({ length: K * N }, Math.random)).reshape([K, N]);
      return () => np.matmul(a.ref, b.ref);
    },
    wait: async (c) => {
      const arr = c as { blockUntilReady(): Promise<{ dispose(): void }> };
      (await arr.blockUntilReady()).dispose();
    },
  });
}
