/** `npm run docs:config`: writes docs/configuration.md from the table of variables. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  REFERENCE_FILE,
  configurationReference,
} from '../src/config/reference';

writeFileSync(join(__dirname, '..', REFERENCE_FILE), configurationReference());
console.log(`wrote ${REFERENCE_FILE}`);
