import { readdir, readFile } from 'node:fs/promises';

export interface Distro {
  /** "Ubuntu", "Debian GNU/Linux", "unknown" when no file names it. */
  distro: string;
  /** "22.04.3 LTS", "12", "unknown". */
  release: string;
}

/**
 * The Linux distro and release, read and parsed as systeminformation's
 * osInfo() does (same files, same fields, same precedence), so host facts stay
 * what they were, without its shell-outs or its ~700 KB of modules.
 */
export async function readDistro(): Promise<Distro> {
  const etc = (await readdir('/etc').catch(() => [])).filter((f) => f.endsWith('-release')).sort();
  const files = [...etc.map((f) => `/etc/${f}`), '/usr/lib/os-release', '/etc/openwrt_release'];
  const texts = await Promise.all(files.map((f) => readFile(f, 'utf8').catch(() => '')));
  return parseDistro(texts.join('\n'));
}

/** KEY=value lines of os-release, lsb-release and friends; a later file's key wins. */
export function parseDistro(text: string): Distro {
  const release: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line.includes('=')) continue;
    const [key = '', value = ''] = line.split('=');
    release[key.trim().toUpperCase()] = value.trim();
  }
  const unquote = (s: string | undefined) => (s ?? '').replace(/"/g, '');
  const distro = unquote(release.DISTRIB_ID || release.NAME || 'unknown');
  let version = unquote(release.VERSION);
  const prettyName = unquote(release.PRETTY_NAME);
  if (prettyName.startsWith(`${distro} `)) version = prettyName.replace(`${distro} `, '').trim();
  // "12 (bookworm)": the codename is not part of the release.
  if (version.includes('(')) version = version.split('(')[0]!.trim();
  return { distro, release: unquote(version || release.DISTRIB_RELEASE || release.VERSION_ID || 'unknown') };
}
