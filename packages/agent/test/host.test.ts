import { HostFacts } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import { collectHostFacts, fromNodeOs } from '../src/inventory/host.js';
import { agentVersion } from '../src/version.js';

describe('host facts', () => {
  it('collects valid facts with systeminformation', async () => {
    const facts = HostFacts.parse(await collectHostFacts());
    expect(facts.cpus).toBeGreaterThan(0);
    expect(facts.memoryBytes).toBeGreaterThan(0);
    expect(facts.hostname).not.toBe('');
  });

  it('falls back to node:os when systeminformation is too slow', async () => {
    expect(await collectHostFacts({ timeoutMs: 0 })).toEqual(fromNodeOs());
  });

  it("reads the agent version from the package's package.json", () => {
    expect(agentVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
