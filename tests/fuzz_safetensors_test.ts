// Seeded fuzzing of the safetensors reader (a few seconds): mutations of a valid file's length
// field, header and body through parseSafetensors, SafetensorsReader (bytes and a chunked
// ByteSource), readSafetensorsHeader (ArrayBuffer) and SafetensorsFile. Every path must agree with
// an independent strict reference parse, read the same bytes when it accepts, throw only
// SafetensorsError when it rejects, and never hang. bench/fuzz_safetensors.ts runs it longer.
import { deepEqual, ok } from "node:assert/strict";
import { fuzzSafetensors } from "./_fuzz_safetensors.ts";

Deno.test("safetensors fuzz: 1500 seeded mutations agree with a strict reference parse", async () => {
  const counts = await fuzzSafetensors(14, 1500, 30);
  deepEqual(counts.failures.slice(0, 10), [], `${counts.failures.length} failures`);
  // the mutations must exercise both outcomes, or the test proves nothing
  ok(counts.accepted >= 50 && counts.rejected >= 500, JSON.stringify(counts));
  // no hang: the slowest case (five paths, one through a file) stays far below a second
  ok(counts.slowestMs < 1000, `slowest case took ${counts.slowestMs.toFixed(0)} ms`);
});
