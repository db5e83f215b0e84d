import type { Config } from 'jest';

const shared = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  rootDir: '.',
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': 'ts-jest' },
};

/**
 * `npm test` runs both projects on the embedded SQLite database; `npm run test:mysql` runs the
 * end-to-end project again against MySQL/MariaDB (DATABASE_URL), one fresh database per suite.
 */
const config: Config = {
  projects: [
    {
      ...shared,
      displayName: 'unit',
      testMatch: ['<rootDir>/src/**/*.spec.ts'],
    },
    {
      ...shared,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
    },
  ],
  testTimeout: 30_000,
};

export default config;
