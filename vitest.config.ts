import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Engine tests start ONNX sessions in worker threads; keep files sequential so the
    // 2-core CI machine is not oversubscribed and timing-sensitive liveness checks stay fair.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
