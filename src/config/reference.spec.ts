import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REFERENCE_FILE, configurationReference } from './reference';
import { VARIABLES } from './variables';

describe(configurationReference.name, () => {
  it('should be what docs/configuration.md holds', () => {
    const written = readFileSync(join(__dirname, '../..', REFERENCE_FILE), {
      encoding: 'utf8',
    });
    expect(
      written === configurationReference()
        ? 'up to date'
        : `${REFERENCE_FILE} differs from the table in src/config/variables.ts: run npm run docs:config`,
    ).toBe('up to date');
  });

  it('should give every variable of the table a row', () => {
    const reference = configurationReference();
    for (const name of Object.keys(VARIABLES)) {
      expect(reference).toContain(`| \`${name}\``);
    }
  });
});
