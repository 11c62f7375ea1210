import path from 'node:path';
import { DEFAULT_PROJECT, TokenKind } from '@rbtk/protocol';
import { writeFileAtomic } from './atomic-write.js';
import { mintToken } from './auth/secrets.js';
import { auditRow, SYSTEM_ACTOR } from './audit.js';
import type { Logger } from './log.js';
import type { Store } from './store/store.js';

export const ADMIN_TOKEN_FILE = 'admin.token';

/**
 * First start: the `default` project, and an instance admin token written to
 * `<dataDir>/admin.token` (mode 0600) for the operator to pick up. The file is
 * written before the token row exists, so a crash in between just means a new
 * token next start; the token itself is never logged. A start that finds no
 * instance admin token still valid (all expired) writes a new one the same way.
 */
export async function bootstrap(deps: { store: Store; log: Logger; dataDir: string; now: number }): Promise<void> {
  const { store, log, now } = deps;
  if (!(await store.projects.get(DEFAULT_PROJECT))) {
    await store.projects.create(
      { name: DEFAULT_PROJECT, createdAt: now },
      auditRow({
        at: now,
        actor: SYSTEM_ACTOR,
        action: 'project.create',
        resourceType: 'project',
        resourceId: DEFAULT_PROJECT,
        project: DEFAULT_PROJECT,
      }),
    );
  }
  // Also when every instance admin token has expired: a restart is then the way back in.
  if (await store.apiTokens.hasInstanceAdmin(now)) return;
  const minted = mintToken(TokenKind.Api);
  const file = path.join(deps.dataDir, ADMIN_TOKEN_FILE);
  await writeFileAtomic(file, `${minted.token}\n`, 0o600);
  await store.apiTokens.insert({
    id: minted.id,
    hash: minted.hash,
    role: 'admin',
    project: null,
    name: 'instance admin',
    createdAt: now,
    expiresAt: null,
    lastUsedAt: null,
    revokedAt: null,
  });
  log.info({ path: file, tokenId: minted.id }, 'instance admin token written');
}
