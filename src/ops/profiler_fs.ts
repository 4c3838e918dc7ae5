/**
 * `DENOISE_PROFILE=1` (or `cpu`, `timestamp-query` to pick the timer): profiles the whole
 * process, prints the per-kernel table to stderr at exit
 * and writes a Chrome trace (open it in https://ui.perfetto.dev) to `DENOISE_PROFILE_TRACE`
 * (default `denoise_profile.json` in the working directory). Importing this module does nothing
 * unless the variable is set.
 *
 * @module
 */
import {
  chromeTrace,
  formatProfile,
  profileIdle,
  profileMark,
  type ProfileReport,
  profileReport,
  profileSettled,
  type ProfileTiming,
  startProfiling,
  stopProfiling,
} from "./profiler.ts";
import { flush, sync } from "./runtime.ts";

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: the profiler stays off
  }
}

/**
 * Writes a report's Chrome trace to `path` (a temporary file renamed into place).
 *
 * @example
 * ```ts
 * import { getDevice, profile, randn, silu, writeChromeTrace } from "../../mod.ts";
 * await getDevice();
 * const report = await profile(() => silu(randn([1024])).dispose());
 * writeChromeTrace(report, await Deno.makeTempFile({ suffix: ".json" }));
 * ```
 */
export function writeChromeTrace(report: ProfileReport, path: string): void {
  const tmp = `${path}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(chromeTrace(report)));
  Deno.renameSync(tmp, path);
}

function printAndWrite(report: ProfileReport, tracePath: string): void {
  if (report.records.length === 0) return;
  console.error(formatProfile(report));
  try {
    writeChromeTrace(report, tracePath);
    console.error(`Chrome trace: ${tracePath} (open it in https://ui.perfetto.dev)`);
  } catch (e) {
    console.error(`The profile trace could not be written to ${tracePath}: ${e}`);
  }
}

/**
 * Ends a profile begun with `startProfiling()` (the CLI's `--profile`): waits for the GPU and the
 * timings, prints the table to stderr and writes the Chrome trace.
 *
 * @example
 * ```ts
 * import { getDevice, randn, reportProfile, silu, startProfiling } from "../../mod.ts";
 * await getDevice();
 * startProfiling();
 * silu(randn([256])).dispose();
 * await reportProfile(await Deno.makeTempFile({ suffix: ".json" }));
 * ```
 */
export async function reportProfile(tracePath = "denoise_profile.json"): Promise<void> {
  if (profileMark() > 0) await sync(); // no dispatch profiled: maybe no device either
  await profileSettled();
  stopProfiling();
  printAndWrite(profileReport(), tracePath);
}

/** Turns the process-wide profile on with its exit report (what `DENOISE_PROFILE=1` does). */
export function profileProcess(
  tracePath = "denoise_profile.json",
  timing: ProfileTiming = "auto",
): void {
  startProfiling(timing);
  globalThis.addEventListener("beforeunload", (e) => {
    // submit what is still queued and wait for its timings before the process ends
    if (profileIdle()) return;
    flush();
    e.preventDefault();
    void profileSettled();
  });
  globalThis.addEventListener("unload", () => printAndWrite(profileReport(), tracePath));
}

const mode = env("DENOISE_PROFILE");
if (mode === "1" || mode === "cpu" || mode === "timestamp-query") {
  profileProcess(env("DENOISE_PROFILE_TRACE"), mode === "1" ? "auto" : mode);
}
