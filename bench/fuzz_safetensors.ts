// A long safetensors fuzz run (the suite's tests/fuzz_safetensors_test.ts runs 1500 cases):
// seeded mutations through every public reading path, checked against the strict reference.
// Prints the counts as a markdown row for bench/RESULTS.md; exits 1 on any failure.
//
//   deno run -A bench/fuzz_safetensors.ts [cases=20000] [seed=1]
import { fuzzSafetensors } from "../tests/_fuzz_safetensors.ts";

const cases = Number(Deno.args[0] ?? 20000);
const seed = Number(Deno.args[1] ?? 1);
const t0 = performance.now();
const c = await fuzzSafetensors(seed, cases, 25);
const s = (performance.now() - t0) / 1000;
for (const f of c.failures.slice(0, 20)) console.error(f);
console.log("| seed | cases | accepted | rejected | via a file | failures | slowest case | time |");
console.log("| ---- | ----- | -------- | -------- | ---------- | -------- | ------------ | ---- |");
console.log(
  `| ${seed} | ${c.cases} | ${c.accepted} | ${c.rejected} | ${c.fileCases} | ` +
    `${c.failures.length} | ${c.slowestMs.toFixed(0)} ms | ${s.toFixed(0)} s |`,
);
console.log(
  `mutation kinds: ${Object.entries(c.kinds).map(([k, n]) => `${k} ${n}`).join(", ")}`,
);
Deno.exit(c.failures.length ? 1 : 0);
