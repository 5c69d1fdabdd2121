/** Pure math of the service (design §1): no I/O, no HTTP, no ONNX. */
export * from './tokens.js';
export * from './advantage.js';
export * from './steps.js';
export * from './attribution.js';
export * from './baselines.js';
export * from './evaluation.js';
