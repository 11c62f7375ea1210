import { HostFacts } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import si from 'systeminformation';
import { collectHostFacts, fromNodeOs } from '../src/inventory/host.js';
import { parseDistro } from '../src/inventory/os-release.js';
import { agentVersion } from '../src/version.js';

describe('host facts', () => {
  it('collects valid facts', async () => {
    const facts = HostFacts.parse(await collectHostFacts());
    expect(facts.cpus).toBeGreaterThan(0);
    expect(facts.memoryBytes).toBeGreaterThan(0);
    expect(facts.hostname).not.toBe('');
  });

  it.runIf(process.platform === 'linux')('reports on Linux what systeminformation reports', async () => {
    const [facts, osInfo, cpu, mem] = await Promise.all([collectHostFacts({ timeoutMs: 10_000 }), si.osInfo(), si.cpu(), si.mem()]);
    expect(facts).toEqual({
      hostname: osInfo.hostname,
      os: [osInfo.distro, osInfo.release].filter(Boolean).join(' '),
      arch: osInfo.arch,
      cpus: cpu.cores,
      memoryBytes: mem.total,
    });
  });

  it('falls back to node:os when the lookup is too slow', async () => {
    expect(await collectHostFacts({ timeoutMs: 0, lookup: () => new Promise(() => {}) })).toEqual(fromNodeOs());
  });

  it('falls back to node:os when the lookup fails', async () => {
    expect(await collectHostFacts({ lookup: () => Promise.reject(new Error('no')) })).toEqual(fromNodeOs());
  });

  it("reads the agent version from the package's package.json", () => {
    expect(agentVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('os-release', () => {
  it('names the distro and its release, without the codename', () => {
    const debian = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n';
    expect(parseDistro(debian)).toEqual({ distro: 'Debian GNU/Linux', release: '12' });
    const ubuntu = 'NAME="Ubuntu"\nVERSION="22.04.3 LTS (Jammy Jellyfish)"\nPRETTY_NAME="Ubuntu 22.04.3 LTS"\nVERSION_ID="22.04"\n';
    expect(parseDistro(ubuntu)).toEqual({ distro: 'Ubuntu', release: '22.04.3 LTS' });
  });

  it("prefers lsb-release's DISTRIB_ID and DISTRIB_RELEASE", () => {
    const text = 'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=20.04\n\nNAME="Alpine Linux"\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n';
    expect(parseDistro(text)).toEqual({ distro: 'Ubuntu', release: '20.04' });
  });

  it('takes the release from PRETTY_NAME, else VERSION_ID', () => {
    const alpine = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n';
    expect(parseDistro(alpine)).toEqual({ distro: 'Alpine Linux', release: 'v3.19' });
    expect(parseDistro('NAME=Foo\nVERSION_ID=1.2\n')).toEqual({ distro: 'Foo', release: '1.2' });
  });

  it('says unknown when no file names a distro', () => {
    expect(parseDistro('')).toEqual({ distro: 'unknown', release: 'unknown' });
  });
});
