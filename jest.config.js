/** Every test runs against real servers on port 0 and real databases (see test/setup). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  globalSetup: '<rootDir>/test/setup/global-setup.mjs',
  globalTeardown: '<rootDir>/test/setup/global-teardown.mjs',
  // The last line of a run names every skipped suite and why.
  reporters: ['default', '<rootDir>/test/setup/skip-summary-reporter.js'],
  testTimeout: 60000,
  maxWorkers: 2,
};
