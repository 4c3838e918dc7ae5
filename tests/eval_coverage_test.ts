// coverageMap(): on rendered scenes it recovers each pixel's object coverage whatever the two
// colours are, and it does not stretch a plain background's noise to full coverage.
import { equal, ok, throws } from "node:assert/strict";
import {
  coverageMap,
  FILL_OFF_TONE,
  PALETTE,
  renderScene,
  type Scene,
  WorldError,
} from "../src/eval/mod.ts";

const SCENE: Scene = {
  width: 32,
  height: 32,
  background: "black",
  shape: "square",
  colour: "white",
  size: "large",
  fill: "solid",
  objects: [{ x: 16, y: 16, radius: 10 }],
};

Deno.test("coverageMap() is the same for any colour pair", () => {
  const ref = coverageMap(renderScene(SCENE), 32, 32);
  equal(ref[16 * 32 + 16], 1);
  equal(ref[0], 0);
  for (const [colour, background] of [["red", "cyan"], ["yellow", "blue"], ["green", "magenta"]]) {
    const m = coverageMap(renderScene({ ...SCENE, colour, background } as Scene), 32, 32);
    // Byte rounding of the blended edge pixels: < 1 / (distance between the colours) ~ 0.01.
    for (let i = 0; i < m.length; i++) {
      ok(Math.abs(m[i]! - ref[i]!) < 0.02, `${colour} on ${background}: pixel ${i}`);
    }
  }
  const striped = coverageMap(renderScene({ ...SCENE, fill: "striped" }), 32, 32);
  const levels = new Set(
    [...striped.subarray(14 * 32 + 12, 14 * 32 + 20)].map((v) => v.toFixed(2)),
  );
  ok(levels.has("1.00") && levels.has(FILL_OFF_TONE.toFixed(2)), [...levels].join(" "));
});

Deno.test("coverageMap() keeps a plain background near zero", () => {
  const rgb = new Uint8Array(16 * 16 * 3);
  for (let i = 0; i < 256; i++) rgb.set(PALETTE.green.map((v) => v + (i % 7) - 3), i * 3);
  const m = coverageMap(rgb, 16, 16);
  // Deviations of at most 3 per channel (5.2 in RGB) over the 60 floor.
  ok(Math.max(...m) <= 5.2 / 60, `max ${Math.max(...m)}`);
  throws(() => coverageMap(rgb, 16, 15), WorldError);
});
