import { equal } from "node:assert/strict";
import { join } from "node:path";
import { bundledModelDir, recordedPath } from "../src/cli/bundled.ts";

Deno.test("recordedPath names shipped folders from the repository root, others as given", () => {
  equal(recordedPath(bundledModelDir()), "models/mini_sd");
  const root = bundledModelDir().slice(0, -"models/mini_sd".length);
  equal(recordedPath(join(root, "runs", "x", "model")), "runs/x/model");
  equal(recordedPath("/somewhere/else/model"), "/somewhere/else/model");
  // a path above the clone stays absolute rather than becoming "../.."
  equal(recordedPath(join(root, "..")), join(root, ".."));
});
