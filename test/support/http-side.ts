import { READINESS_MAX_AGE_MS } from '../../src/observability/health';
import { waitFor } from './wait-for';

export interface Probe {
  status: number;
  /** The body as sent, to search for what must not be in it. */
  text: string;
  body: Record<string, any>;
}

/** One GET /health/ready on the HTTP side port. */
export async function probeReadiness(port: number): Promise<Probe> {
  const response = await fetch(`http://127.0.0.1:${port}/health/ready`);
  const text = await response.text();
  return { status: response.status, text, body: JSON.parse(text) };
}

/**
 * Probes until readiness answers `status`: a change shows within READINESS_MAX_AGE_MS (the
 * answer is computed at most that often) plus the time the checks take. Fails after `limitMs`.
 */
export async function readinessBecomes(
  port: number,
  status: number,
  limitMs = READINESS_MAX_AGE_MS + 4_000,
): Promise<Probe> {
  let last: Probe | undefined;
  return waitFor(
    () => `readiness ${status} (last ${last?.status}: ${last?.text})`,
    async () => {
      last = await probeReadiness(port);
      return last.status === status && last;
    },
    { timeoutMs: limitMs, intervalMs: 50 },
  );
}
