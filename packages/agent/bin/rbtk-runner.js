#!/usr/bin/env node
// Committed entry point: npm links bins at install time, before dist/ is built.
// It runs the bundle that `npm run build` makes (scripts/bundle.mjs).
import "../dist/bundle/rbtk-runner.js";
