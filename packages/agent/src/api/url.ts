/**
 * Joins a coordinator base URL and an API route, keeping any path prefix the
 * base has (a coordinator behind a reverse proxy at https://ci.example/rbtk/).
 */
export function coordinatorUrl(base: string, route: string, protocol?: 'ws'): URL {
  const url = new URL(base);
  url.pathname = url.pathname.replace(/\/+$/, '') + route;
  url.search = '';
  url.hash = '';
  if (protocol === 'ws') url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}
