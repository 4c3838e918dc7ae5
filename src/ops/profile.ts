/**
 * `profile(fn)`: runs a piece of GPU work under the profiler and returns its per-kernel report.
 *
 * @module
 */
import {
  profileMark,
  type ProfileReport,
  profileReport,
  profileSettled,
  type ProfileTiming,
  startProfiling,
  stopProfiling,
} from "./profiler.ts";
import { sync } from "./runtime.ts";

/** Options of `profile`. */
export interface ProfileOptions {
  /** `auto` (default): GPU timestamps where the adapter has them; `cpu`: submit-to-done. */
  timing?: ProfileTiming;
}

/**
 * Runs `fn` (sync or async) with every dispatch timed, waits for the GPU, and returns the report
 * of the dispatches it issued: records, and aggregates by kernel, op and phase.
 *
 * @example
 * ```ts
 * import { formatProfile, getDevice, profile, randn, silu } from "../../mod.ts";
 * await getDevice();
 * const report = await profile(() => silu(randn([4096])).dispose());
 * console.log(report.byKernel[0]?.key, formatProfile(report));
 * ```
 */
export async function profile(
  fn: () => unknown,
  options: ProfileOptions = {},
): Promise<ProfileReport> {
  await sync(); // earlier work is not part of this profile
  startProfiling(options.timing ?? "auto");
  const from = profileMark();
  try {
    await fn();
    await sync();
  } finally {
    stopProfiling();
  }
  const to = profileMark();
  await profileSettled();
  return profileReport(from, to);
}
