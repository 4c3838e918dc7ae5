/**
 * kohya's balancing of regularization repeats against the training count
 * (`DreamBoothDataset.__init__`): reg images are taken in order with their own repeats until the
 * reg count reaches the train count, then one more repeat each, round-robin, until it does; reg
 * images never reached are unused.
 *
 * @module
 */

/**
 * The repeats each reg image gets (0 = unused), given the train count (images times repeats).
 *
 * @example
 * ```ts
 * import { balanceRegRepeats } from "./reg_balance.ts";
 * console.log(balanceRegRepeats(10, [1, 1, 1])); // [4, 3, 3]
 * ```
 */
export function balanceRegRepeats(trainCount: number, regRepeats: readonly number[]): number[] {
  const out = regRepeats.map(() => 0);
  if (regRepeats.length === 0) return out;
  let n = 0, first = true;
  while (n < trainCount) {
    for (let i = 0; i < regRepeats.length; i++) {
      if (first) {
        out[i] = regRepeats[i]!;
        n += regRepeats[i]!;
      } else {
        out[i]!++;
        n++;
      }
      if (n >= trainCount) break;
    }
    first = false;
  }
  return out;
}
