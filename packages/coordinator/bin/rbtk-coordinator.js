#!/usr/bin/env node
// Committed entry point: npm links bins at install time, before dist/ is built.
import "../dist/cli/coordinator.js";
