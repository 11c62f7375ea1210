import { parseToken } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import { memoryLogger, runnerToken } from './helpers/fixtures.js';

describe('createLogger', () => {
  it('writes JSON lines and never a token, whatever field it is in', () => {
    const { token, id } = runnerToken();
    const log = memoryLogger('info');
    log.logger.info({ token, config: { token }, rotatedToken: { id, token }, headers: { authorization: `Bearer ${token}` } }, 'hello');
    expect(log.text()).not.toContain(parseToken(token)!.secret);
    expect(log.lines[0]).toMatchObject({
      msg: 'hello',
      pid: process.pid,
      token: `rbtk_run_${id}_…`,
      config: { token: `rbtk_run_${id}_…` },
      rotatedToken: { id, token: `rbtk_run_${id}_…` },
      headers: { authorization: `rbtk_run_${id}_…` },
    });
  });
});
