import { createRequire } from 'node:module';

/**
 * For big CommonJS dependencies that stay outside the bundle
 * (systeminformation): require() them instead of importing them. Node runs
 * its CommonJS export lexer over every CJS module an ES module imports; over
 * a big module the lexer gets hot enough for V8 to optimize it, and the
 * daemon keeps ~4 MB of optimizing compiler it would otherwise never page in.
 */
export const requireCjs = createRequire(import.meta.url);
