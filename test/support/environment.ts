import type { Circus } from '@jest/types';
import NodeEnvironment from 'jest-environment-node';

/** Set on the test file's global while the running test has failed (read by nest-log.setup.ts). */
export const TEST_FAILED = '__paiTestFailed';

/**
 * Node's environment, telling the test file whether the running test has failed so far: what
 * Nest logged is kept out of a green run's output, and shown for a test that failed.
 */
export default class Environment extends NodeEnvironment {
  handleTestEvent(event: Circus.Event): void {
    if (event.name === 'test_start') this.global[TEST_FAILED] = false;
    if (event.name === 'test_fn_failure' || event.name === 'hook_failure') {
      this.global[TEST_FAILED] = true;
    }
  }
}
