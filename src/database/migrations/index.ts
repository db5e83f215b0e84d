import { InitialSchema1764288000000 } from './1764288000000-InitialSchema';
import { Ledger1764900000000 } from './1764900000000-Ledger';

/** In order. Listed as classes, not a glob, so ts-jest, the build and the CLI all find them. */
export const migrations = [InitialSchema1764288000000, Ledger1764900000000];
