// The issue-14 exit check: `mod.ts sample` on a U-Net config with block_out_channels [64, 128]
// over weights made for [32, 64], run RUNS times in a row (default 20). Every run must exit 1
// with the shape error; a native crash at exit shows as 134 / 139 or a signal. Prints the counts.
//
//   deno run -A bench/exit_after_error.ts [runs]
import { getDevice } from "../src/ops/device.ts";
import { saveDiffusersFolder } from "../src/nn/loaders_fs.ts";
import { ensureRuntimeDir } from "../src/cli/runtime_dir.ts";
import { tinyModels } from "../tests/_sd_fixture.ts";

const runs = Number(Deno.args[0] ?? 20);
ensureRuntimeDir();
await getDevice();
const dir = await Deno.makeTempDir({ prefix: "denoise_exit_" });
const m = tinyModels(9);
await saveDiffusersFolder(`${dir}/model`, m);
[m.unet, m.vae, m.textEncoder].forEach((x) => x.dispose());
const cfg = `${dir}/model/unet/config.json`;
const c = JSON.parse(await Deno.readTextFile(cfg));
await Deno.writeTextFile(cfg, JSON.stringify({ ...c, block_out_channels: [64, 128] }));

const mod = new URL("../mod.ts", import.meta.url).pathname;
const counts = new Map<string, number>();
for (let i = 0; i < runs; i++) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", mod, "sample", "--model", `${dir}/model`, "--prompt", "x"],
    stdout: "null",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(r.stderr);
  const key = r.signal ? `signal ${r.signal}` : `exit ${r.code}` +
    (r.code === 1 && !err.includes("shape mismatches") ? " (other error)" : "");
  counts.set(key, (counts.get(key) ?? 0) + 1);
  if (key !== "exit 1") console.error(`run ${i + 1}: ${key}\n${err}`);
}
await Deno.remove(dir, { recursive: true });
console.log(
  `${runs} runs: ${[...counts].map(([k, n]) => `${k}: ${n}`).join(", ")}` +
    (counts.get("exit 1") === runs ? " (all exit 1)" : ""),
);
Deno.exit(counts.get("exit 1") === runs ? 0 : 1);
