import { relative } from 'node:path';
import type {
  AggregatedResult,
  Config,
  Reporter,
  TestContext,
} from '@jest/reporters';

/** The reason a skipped test or block gives at the end of its name: `name [reason]`. */
const REASON = /\[([^[\]]+)\]$/;

/**
 * Lists the skipped tests after a run, each with the reason its name (or a block's) gives: jest
 * itself shows skipped tests only with --verbose, and a test that silently does not run proves
 * nothing. Tests skipped by a `-t` pattern are not listed, only those that say why.
 */
export default class SkipReporter implements Pick<Reporter, 'onRunComplete'> {
  private readonly globalConfig: Config.GlobalConfig;

  constructor(globalConfig: Config.GlobalConfig) {
    this.globalConfig = globalConfig;
  }

  onRunComplete(_: Set<TestContext>, results: AggregatedResult): void {
    const filtered = Boolean(this.globalConfig.testNamePattern);
    /** `file\nreason` → the skipped tests' names. */
    const groups = new Map<string, string[]>();
    for (const file of results.testResults) {
      const path = relative(this.globalConfig.rootDir, file.testFilePath);
      for (const test of file.testResults) {
        if (test.status !== 'pending' && test.status !== 'todo') continue;
        const names = [test.title, ...[...test.ancestorTitles].reverse()];
        const reason = names
          .map((name) => REASON.exec(name)?.[1])
          .find(Boolean);
        if (!reason && filtered) continue;
        const key = `${path}\n${reason ?? 'no reason given'}`;
        const name = [...test.ancestorTitles, test.title].join(' › ');
        groups.set(key, [...(groups.get(key) ?? []), name]);
      }
    }
    if (groups.size === 0) return;
    const total = [...groups.values()].reduce(
      (n, names) => n + names.length,
      0,
    );
    const lines = [`Skipped tests (${total}), and why:`];
    for (const [key, names] of groups) {
      const [path, reason] = key.split('\n');
      lines.push(
        names.length === 1
          ? `  ${path} › ${names[0]}${names[0].includes(`[${reason}]`) ? '' : `: ${reason}`}`
          : `  ${path}: ${names.length} tests: ${reason}`,
      );
    }
    process.stderr.write(`\n${lines.join('\n')}\n`);
  }
}
