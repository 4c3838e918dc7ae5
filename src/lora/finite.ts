// A check that an entry's tensors hold only finite numbers, before anything is uploaded or merged.
import { ArgumentError } from "../ops/errors.ts";
import type { HostTensor, LoraEntry } from "./file_types.ts";

/** Throws when any tensor of the entry holds NaN or an infinity, naming the entry and tensor. */
export function checkEntryFinite(entry: LoraEntry): void {
  const named: [string, HostTensor | undefined][] = [
    ["down", entry.down],
    ["up", entry.up],
    ["mid", entry.mid],
    ["w_norm", entry.wNorm],
    ["b_norm", entry.bNorm],
    ...Object.entries(entry.tensors),
  ];
  for (const [name, t] of named) {
    if (!t) continue;
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i]!)) {
        throw new ArgumentError(
          `"${entry.path}": ${name} holds ${t.data[i]} at index ${i}; the file is corrupt or ` +
            "was saved from a diverged run",
        );
      }
    }
  }
  if (entry.alpha !== undefined && !Number.isFinite(entry.alpha)) {
    throw new ArgumentError(`"${entry.path}": alpha is ${entry.alpha}, not a finite number`);
  }
}
