/**
 * The `--log-dir` outputs: losses as JSONL (`losses.jsonl`) and CSV (`losses.csv`), appended per
 * logged step, and `loss_curve.svg` rewritten atomically so it is always current and whole.
 *
 * @module
 */
import { join } from "node:path";
import { ensureWritableDir, writeFileAtomic } from "./atomic_fs.ts";
import { lossCurveSvg, type LossPoint } from "./loss_svg.ts";
import { reportHtml, type ReportInput } from "./report_html.ts";

/** One logged step. */
export interface LossRecord {
  /** Optimizer step (1-based: steps done). */
  step: number;
  /** Epoch (1-based). */
  epoch: number;
  /** The step's loss. */
  loss: number;
  /** The smoothed loss. */
  smoothed: number;
  /** The learning rate used. */
  lr: number;
  /** Seconds since the run started. */
  elapsed: number;
}

const CSV_HEADER = "step,epoch,loss,smoothed_loss,lr,elapsed_s\n";

function csvLine(r: LossRecord): string {
  return `${r.step},${r.epoch},${r.loss},${r.smoothed},${r.lr},${r.elapsed.toFixed(3)}\n`;
}

/**
 * The log folder of a run.
 *
 * @example
 * ```ts
 * import { RunLog } from "./run_log_fs.ts";
 * const log = await RunLog.open("out/logs");
 * await log.add({ step: 1, epoch: 1, loss: 0.2, smoothed: 0.2, lr: 1e-4, elapsed: 1.5 });
 * ```
 */
export class RunLog {
  /** The folder. */
  readonly dir: string;
  readonly #records: LossRecord[];

  private constructor(dir: string, records: LossRecord[]) {
    this.dir = dir;
    this.#records = records;
  }

  /**
   * Opens (creating) the folder. A new run starts empty files; with `resumeStep`, records up to
   * that step are kept (later ones, from after the saved state, are dropped) and logging goes on.
   */
  static async open(dir: string, options: { resumeStep?: number } = {}): Promise<RunLog> {
    await ensureWritableDir(dir);
    let records: LossRecord[] = [];
    if (options.resumeStep !== undefined) {
      const text = await Deno.readTextFile(join(dir, "losses.jsonl")).catch(() => "");
      records = text.split("\n").flatMap((l) => {
        try {
          return l.trim() ? [JSON.parse(l) as LossRecord] : [];
        } catch {
          return []; // a line cut by a killed run
        }
      }).filter((r) => r.step <= options.resumeStep!);
    }
    const log = new RunLog(dir, records);
    await writeFileAtomic(
      join(dir, "losses.jsonl"),
      records.map((r) => JSON.stringify(r) + "\n").join(""),
    );
    await writeFileAtomic(join(dir, "losses.csv"), CSV_HEADER + records.map(csvLine).join(""));
    await log.#writeSvg();
    return log;
  }

  /** The records so far. */
  get records(): readonly LossRecord[] {
    return this.#records;
  }

  /** Appends one record to both files and rewrites the SVG. */
  async add(r: LossRecord): Promise<void> {
    this.#records.push(r);
    await Deno.writeTextFile(join(this.dir, "losses.jsonl"), JSON.stringify(r) + "\n", {
      append: true,
    });
    await Deno.writeTextFile(join(this.dir, "losses.csv"), csvLine(r), { append: true });
    await this.#writeSvg();
  }

  /** The curve's points. */
  points(): LossPoint[] {
    return this.#records.map((r) => ({ step: r.step, loss: r.loss, smoothed: r.smoothed }));
  }

  async #writeSvg(): Promise<void> {
    await writeFileAtomic(join(this.dir, "loss_curve.svg"), lossCurveSvg(this.points()));
  }
}

/**
 * Writes the run's HTML report (`report.html` in `dir`) atomically, with the current loss curve.
 *
 * @example
 * ```ts ignore
 * await writeReport(log, { title: "dog", settings: {}, prompts: ["a dog"], samples: [] });
 * ```
 */
export async function writeReport(
  log: RunLog,
  input: Omit<ReportInput, "lossSvg">,
): Promise<string> {
  const path = join(log.dir, "report.html");
  await writeFileAtomic(path, reportHtml({ ...input, lossSvg: lossCurveSvg(log.points()) }));
  return path;
}
