import { Database } from '../../src/database/database.service';

/**
 * The real Database behind a gate: every unit of work, whatever the method, first awaits
 * `wait()`, as on a database that has stalled. A Proxy, so that no method of Database can go
 * around the gate.
 */
export function gatedDatabase(
  real: Database,
  wait: () => Promise<void>,
): Database {
  return new Proxy(real, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        await wait();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
