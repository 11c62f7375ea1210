export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * `host:port`, `[ipv6]:port`, or `:port` (all interfaces). Port 0 means any
 * free port. Throws a RangeError that says what a valid value looks like.
 */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new RangeError(`invalid listen address "${text}": write it like 127.0.0.1:7420, 0.0.0.0:7420 or [::1]:7420`);
  }
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  return { host, port };
}
