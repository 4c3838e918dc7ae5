// Child process of the SIGKILL test: rewrites one state folder forever; each version holds a
// 4 MiB file filled with the version number (mod 256) and a JSON naming that version.
import { writeFolderAtomic } from "../src/train/atomic_fs.ts";

const dir = Deno.args[0]!;
for (let version = 0;; version++) {
  await writeFolderAtomic(dir, {
    "weights.bin": new Uint8Array(4 << 20).fill(version % 256),
    "train_state.json": JSON.stringify({ version }),
  });
  if (version === 0) console.log("ready");
}
