import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["supabase/tests/integration/**/*.test.ts"],
    // The suites share one database and some drain shared queues (pg_net), so files run one at a time.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
