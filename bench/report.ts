// Runs `deno bench` on the given bench files (default: all) and prints a Markdown table of
// medians with GFLOP/s or GB/s, the adapter, the date and the command, for bench/RESULTS.md.
//   deno run -A bench/report.ts [bench/matmul_bench.ts ...]
import { getDevice } from "../mod.ts";

const files = Deno.args.length > 0
  ? Deno.args
  : [...Deno.readDirSync(new URL(".", import.meta.url))]
    .filter((e) => e.name.endsWith("_bench.ts"))
    .map((e) => `bench/${e.name}`)
    .sort();
const tmp = await Deno.makeTempFile({ suffix: ".json" });
const cmd = new Deno.Command(Deno.execPath(), {
  args: ["bench", "-A", ...files],
  env: { DENOISE_BENCH_SAMPLES: tmp },
  stdout: "inherit",
  stderr: "inherit",
});
const { code } = await cmd.output();
const samples = JSON.parse(await Deno.readTextFile(tmp).catch(() => "{}")) as Record<
  string,
  { work: { flops?: number; bytes?: number }; ms: number[] }
>;
await Deno.remove(tmp);
const { description } = await getDevice();
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
console.log(
  `\nAdapter: ${description}; ${new Date().toISOString().slice(0, 10)}; ` +
    `\`deno run -A bench/report.ts ${Deno.args.join(" ")}\`\n`,
);
console.log("| bench | median | rate | samples |\n|---|---|---|---|");
for (const [name, { work, ms }] of Object.entries(samples)) {
  const t = median(ms);
  const rate = work.flops
    ? `${(work.flops / t / 1e6).toFixed(1)} GFLOP/s`
    : work.bytes
    ? `${(work.bytes / t / 1e6).toFixed(2)} GB/s`
    : "";
  console.log(`| ${name} | ${t.toFixed(2)} ms | ${rate} | ${ms.length} |`);
}
Deno.exit(code);
