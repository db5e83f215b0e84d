import type { Config } from 'jest';

/**
 * Four projects, each a folder (docs/testing.md says what each proves). `npm test` runs unit, e2e
 * and resilience on the embedded SQLite database; `npm run test:mysql` runs e2e and resilience
 * again on MySQL/MariaDB, `npm run test:nats` over NATS, `npm run test:scale` the scale project.
 * scripts/jest.mjs is the one command line that runs them.
 */
const project = (displayName: string, testMatch: string): Config => ({
  displayName,
  testMatch: [testMatch],
  moduleFileExtensions: ['js', 'json', 'ts'],
  rootDir: '.',
  testEnvironment: '<rootDir>/test/support/environment.ts',
  transform: { '^.+\\.ts$': 'ts-jest' },
  // The client package's sources, as tsconfig.json's paths map them: tests need no build of it.
  moduleNameMapper: {
    '^@pai/client$': '<rootDir>/clients/node/src/index.ts',
    '^@pai/client/(.*)$': '<rootDir>/clients/node/src/$1',
  },
  // Nest's logger writes into a capture the tests can read, not onto the terminal.
  setupFilesAfterEnv: ['<rootDir>/test/support/nest-log.setup.ts'],
});

const config: Config = {
  projects: [
    project('unit', '<rootDir>/{src,clients/node/src}/**/*.spec.ts'),
    project('e2e', '<rootDir>/test/e2e/**/*.e2e-spec.ts'),
    project('resilience', '<rootDir>/test/resilience/**/*.e2e-spec.ts'),
    project('scale', '<rootDir>/test/scale/**/*.e2e-spec.ts'),
  ],
  reporters: ['default', '<rootDir>/test/support/skip-reporter.ts'],
  testTimeout: 30_000,
};

export default config;
