/**
 * Figures a suite measures on the way (a fuzz run's counts, the heap's growth, the volume of a
 * log), printed only with PAI_TEST_REPORT=1: a green run prints its results and nothing else.
 */
export function report(text: string): void {
  if (process.env.PAI_TEST_REPORT === '1') console.log(text);
}
