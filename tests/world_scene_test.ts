// The procedural world's scenes and pixels: deterministic from (seed, index), attributes drawn
// as the options say, objects inside the image and apart, shapes of the right area, edges
// anti-aliased, and clear errors for options that cannot work.
import { deepEqual, equal, notDeepEqual, ok, throws } from "node:assert/strict";
import {
  ALL_SHAPES,
  BASE_SHAPES,
  COLOURS,
  FILL_OFF_TONE,
  generateScene,
  insideFill,
  insideShape,
  PALETTE,
  ProceduralWorld,
  renderScene,
  rgbToChw,
  type Scene,
  type ShapeName,
  WorldError,
} from "../src/eval/mod.ts";

Deno.test("ProceduralWorld items depend only on seed and index", () => {
  const a = new ProceduralWorld({ seed: 5 }), b = new ProceduralWorld({ seed: 5 });
  const run = a.items(0, 8);
  // Out of order and from a fresh world: the same scenes, captions and bytes.
  for (const i of [7, 3, 0]) deepEqual(b.item(i), run[i]);
  const other = new ProceduralWorld({ seed: 6 }).items(0, 8);
  notDeepEqual(other.map((x) => x.caption), run.map((x) => x.caption));
  notDeepEqual(run[1]!.scene, run[2]!.scene);
});

Deno.test("scenes draw every allowed attribute about equally, objects apart and inside", () => {
  const world = new ProceduralWorld({ seed: 1 });
  const n = 3000;
  const tally = new Map<string, number>();
  const bump = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);
  for (let i = 0; i < n; i++) {
    const s = world.describe(i).scene;
    ok(s.colour !== s.background, `scene ${i} has a ${s.colour} object on ${s.background}`);
    equal(s.fill, "solid");
    bump(`shape ${s.shape}`);
    bump(`colour ${s.colour}`);
    bump(`size ${s.size}`);
    bump(`count ${s.objects.length}`);
    for (const [j, o] of s.objects.entries()) {
      ok(o.x - o.radius >= 0 && o.x + o.radius <= 32, `scene ${i} object ${j} leaves the image`);
      ok(o.y - o.radius >= 0 && o.y + o.radius <= 32, `scene ${i} object ${j} leaves the image`);
      for (const p of s.objects.slice(j + 1)) {
        ok(Math.hypot(o.x - p.x, o.y - p.y) >= o.radius + p.radius + 1, `scene ${i} overlaps`);
      }
    }
  }
  // Each value's share within 20% of uniform: 3000 draws over <= 8 values gives >= 375 per
  // value, whose binomial sd is < 5% of the mean, so 20% is > 4 sd.
  const expect = (key: string, k: number) => {
    const got = tally.get(key) ?? 0;
    ok(Math.abs(got - n / k) < 0.2 * n / k, `${key}: ${got} of ${n}, expected about ${n / k}`);
  };
  for (const s of BASE_SHAPES) expect(`shape ${s}`, BASE_SHAPES.length);
  for (const c of COLOURS) expect(`colour ${c}`, COLOURS.length);
  for (const z of ["small", "large"]) expect(`size ${z}`, 2);
  for (const c of [1, 2, 3]) expect(`count ${c}`, 3);
  equal(tally.get("shape star"), undefined, "pretraining scenes never show the star");
});

Deno.test("three large objects fit in the smallest image", () => {
  const world = new ProceduralWorld({
    seed: 2,
    width: 16,
    height: 16,
    counts: [3],
    sizes: ["large"],
  });
  for (let i = 0; i < 500; i++) equal(world.describe(i).scene.objects.length, 3);
  const wide = new ProceduralWorld({ seed: 2, width: 48, height: 20, counts: [3] }).item(0);
  equal(wide.rgb.length, 48 * 20 * 3);
});

// Area of a shape in unit coordinates by midpoint integration on a 1000 x 1000 grid over
// [-1, 1]^2 (error ~ perimeter x cell size ~ 0.01 in absolute area, under 1% for these shapes).
function area(shape: ShapeName): number {
  const n = 1000;
  let hits = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (insideShape(shape, -1 + (2 * (i + 0.5)) / n, -1 + (2 * (j + 0.5)) / n)) hits++;
    }
  }
  return (hits * 4) / (n * n);
}

Deno.test("insideShape() encloses each shape's analytic area", () => {
  const inner = Math.cos((2 * Math.PI) / 5) / Math.cos(Math.PI / 5);
  const want: Record<ShapeName, number> = {
    circle: Math.PI,
    square: 1.7 * 1.7,
    triangle: (3 * Math.sqrt(3)) / 4, // equilateral, circumradius 1
    ring: Math.PI * (1 - 0.55 * 0.55),
    cross: 2 * 0.6 * 1.9 - 0.6 * 0.6,
    star: 10 * 0.5 * inner * Math.sin(Math.PI / 5), // ten triangles (0, outer, inner)
  };
  for (const s of ALL_SHAPES) {
    const got = area(s);
    ok(Math.abs(got - want[s]) < 0.01 * want[s], `${s}: area ${got}, expected ${want[s]}`);
  }
  ok(insideShape("triangle", 0, -0.7) && !insideShape("triangle", 0, 0.8), "apex up");
  ok(insideShape("star", 0, -0.95) && !insideShape("star", 0, 0.95), "a star's point is up");
});

Deno.test("insideFill() paints half the stripes and 9% pi of the dots", () => {
  const share = (fill: "striped" | "dotted") => {
    let hits = 0;
    for (let i = 0; i < 400; i++) {
      for (let j = 0; j < 400; j++) if (insideFill(fill, i * 0.05 - 10, j * 0.05 - 10, 4)) hits++;
    }
    return hits / 160000;
  };
  // 20 x 20 pixels is 5 whole periods of 4 in each direction, so the shares are exact up to
  // the 0.05-pixel sampling (error < 2%).
  ok(Math.abs(share("striped") - 0.5) < 0.01, `striped ${share("striped")}`);
  ok(Math.abs(share("dotted") - 0.09 * Math.PI) < 0.01, `dotted ${share("dotted")}`);
});

function pixel(rgb: Uint8Array, w: number, x: number, y: number): number[] {
  const i = (Math.floor(y) * w + Math.floor(x)) * 3;
  return [rgb[i]!, rgb[i + 1]!, rgb[i + 2]!];
}

Deno.test("renderScene() paints objects over the background with anti-aliased edges", () => {
  const scene: Scene = {
    width: 32,
    height: 32,
    background: "blue",
    shape: "circle",
    colour: "yellow",
    size: "large",
    fill: "solid",
    objects: [{ x: 10.3, y: 12.7, radius: 6 }],
  };
  const rgb = renderScene(scene);
  deepEqual(pixel(rgb, 32, 10, 12), [...PALETTE.yellow]);
  deepEqual(pixel(rgb, 32, 30, 30), [...PALETTE.blue]);
  // Coverage summed over the image equals the circle's area (pi 36 = 113.1 pixels) within the
  // 16-sample quantization (a few tenths of a pixel along the ~38 edge pixels) and byte rounding.
  let cover = 0, partial = 0;
  for (let i = 0; i < 32 * 32; i++) {
    const a = (rgb[i * 3 + 1]! - PALETTE.blue[1]) / (PALETTE.yellow[1] - PALETTE.blue[1]);
    cover += a;
    if (a > 0.02 && a < 0.98) partial++;
  }
  ok(Math.abs(cover - Math.PI * 36) < 1.5, `covered ${cover} pixels`);
  ok(partial > 20, `${partial} edge pixels are blended`);
  // One sample per pixel: no blending at all.
  const hard = renderScene(scene, { supersample: 1 });
  for (const v of hard) ok(PALETTE.yellow.includes(v) || PALETTE.blue.includes(v));
  // A striped fill keeps the object's silhouette at FILL_OFF_TONE between the stripes.
  const striped = renderScene({
    ...scene,
    fill: "striped",
    objects: [{ x: 16, y: 16, radius: 10 }],
  });
  const g = new Set<number>();
  for (let y = 12; y < 20; y++) for (let x = 12; x < 20; x++) g.add(pixel(striped, 32, x, y)[1]!);
  ok(g.has(PALETTE.yellow[1]), "stripes in the object colour");
  ok(g.has(Math.round(PALETTE.blue[1] + (PALETTE.yellow[1] - PALETTE.blue[1]) * FILL_OFF_TONE)));
});

Deno.test("rgbToChw() maps bytes to [-1, 1] channels first", () => {
  deepEqual(
    [...rgbToChw(new Uint8Array([0, 255, 51, 255, 0, 0]), 2, 1)],
    [-1, 1, 1, -1, 51 / 127.5 - 1, -1].map(Math.fround),
  );
  throws(() => rgbToChw(new Uint8Array(5), 2, 1), WorldError);
});

Deno.test("bad world options get clear errors", () => {
  throws(() => generateScene(0, 0, { width: 8 }), /at least 16 pixels/);
  throws(() => generateScene(0, 0, { shapes: [] }), /shapes option is an empty list/);
  throws(() => generateScene(0, 0, { counts: [4 as 1] }), /counts of 1, 2 or 3/);
  throws(
    () => generateScene(0, 0, { colours: ["red"], backgrounds: ["red"] }),
    /allow a second colour/,
  );
  throws(() => new ProceduralWorld({ seed: -1 }), WorldError);
  throws(() => new ProceduralWorld().item(1.5), /item index is 1.5/);
});
