import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["supabase/tests/integration/**/*.test.ts"],
    // The suites share one database and some drain shared queues (pg_net), so files run one at a time.
    fileParallelism: false,
    // The real pg_net's worker, where it is installed, is frozen while the suites run.
    globalSetup: ["supabase/tests/integration/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
