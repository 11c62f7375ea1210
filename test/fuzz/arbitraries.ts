import fc from 'fast-check';
import { MAX_WS_FRAME_BYTES } from '@rbtk/protocol';

/*
 * Inputs for the property tests: plausible values (so frames get past the
 * first check and reach deeper code), mutations of well-formed messages, and
 * plain junk — deep JSON, huge strings, oversized frames, binary frames.
 */

/** A frame as sent: text, or binary bytes. */
export type Frame = { text: string } | { binary: Buffer };

export const DEEP = 50_000;
export const deepJson = (depth = DEEP) => '['.repeat(depth) + ']'.repeat(depth);
export const deepObject = (depth = 5_000) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

/** Ids that look right (16 alphanumerics), known ones, and junk. */
export const idArb = (known: readonly string[]) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...known) },
    { weight: 3, arbitrary: fc.stringMatching(/^[A-Za-z0-9]{16}$/) },
    { weight: 1, arbitrary: fc.string({ maxLength: 80 }) },
    { weight: 1, arbitrary: fc.constantFrom('', 'x'.repeat(65), '../../etc/passwd', '%00', '\u0000', 'null') },
  );

export const intish = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 4 }) },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.constantFrom(-1, 2 ** 31, Number.MAX_SAFE_INTEGER, 1e300, 0.5) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
);

export const shortString = fc.string({ maxLength: 40, unit: 'grapheme' });

/** Any JSON value, small. */
export const jsonish = fc.jsonValue({ maxDepth: 3 });

/** A key path mutation applied to a well-formed message object. */
type Mutation =
  | { kind: 'drop'; key: number }
  | { kind: 'set'; key: number; value: unknown }
  | { kind: 'add'; key: string; value: unknown }
  | { kind: 'type'; value: unknown }
  | { kind: 'truncate'; at: number }
  | { kind: 'splice'; at: number; junk: string }
  | { kind: 'wrap' };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), key: fc.nat() }),
  fc.record({ kind: fc.constant('set' as const), key: fc.nat(), value: jsonish }),
  fc.record({ kind: fc.constant('add' as const), key: shortString, value: jsonish }),
  fc.record({ kind: fc.constant('type' as const), value: fc.oneof(shortString, jsonish, fc.constantFrom('HELLO', 'heartbeat ', 'rm -rf', '__proto__', 'constructor')) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), junk: fc.constantFrom('"', ',', '}', '{', '\\', '\u0000', ']]', 'NaN', '\ud800') }),
  fc.record({ kind: fc.constant('wrap' as const) }),
);

/** Applies one mutation to a well-formed message and serialises it. */
export function mutate(message: Record<string, unknown>, m: Mutation): string {
  const copy: Record<string, unknown> = { ...message };
  const keys = Object.keys(copy);
  const text = JSON.stringify(message);
  switch (m.kind) {
    case 'drop':
      delete copy[keys[m.key % keys.length]!];
      return JSON.stringify(copy);
    case 'set':
      copy[keys[m.key % keys.length]!] = m.value;
      return JSON.stringify(copy);
    case 'add':
      copy[m.key] = m.value;
      return JSON.stringify(copy);
    case 'type':
      copy.type = m.value;
      return JSON.stringify(copy);
    case 'truncate':
      return text.slice(0, m.at % text.length);
    case 'splice': {
      const at = m.at % text.length;
      return text.slice(0, at) + m.junk + text.slice(at);
    }
    case 'wrap':
      return JSON.stringify([message]);
  }
}

/**
 * Frames built from well-formed messages: as they are (replayed, out of
 * order), mutated, or replaced by junk. `valid` makes the messages of one
 * endpoint.
 */
export function frameArb(valid: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<Frame> {
  return fc.oneof(
    { weight: 10, arbitrary: valid.map((m) => ({ text: JSON.stringify(m) })) },
    { weight: 6, arbitrary: fc.tuple(valid, mutationArb).map(([m, mu]) => ({ text: mutate(m, mu) })) },
    { weight: 2, arbitrary: jsonish.map((v) => ({ text: JSON.stringify(v) })) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200, unit: 'binary' }).map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ binary: Buffer.from(b) })) },
  ).map((f) => onTheWire(f as Frame));
}

/** A text frame as the peer reads it: UTF-8 on the wire turns a lone surrogate into U+FFFD. */
export const onTheWire = (f: Frame): Frame => ('text' in f ? { text: Buffer.from(f.text, 'utf8').toString('utf8') } : f);

/** Rare and expensive inputs, each a frame on its own: deep, huge, oversized. */
export function specialFrames(valid: Record<string, unknown>): Frame[] {
  const bigString = 'x'.repeat(MAX_WS_FRAME_BYTES - 4_096);
  return [
    { text: deepJson() },
    { text: deepObject() },
    { text: JSON.stringify({ ...valid, extra: JSON.parse(deepObject(500)) }) },
    { text: JSON.stringify({ ...valid, type: bigString.slice(0, 100_000) }) },
    { text: JSON.stringify(Object.fromEntries(Object.keys(valid).map((k) => [k, bigString.slice(0, 200_000)]))) },
    { text: 'x'.repeat(MAX_WS_FRAME_BYTES + 10) },
    { binary: Buffer.alloc(MAX_WS_FRAME_BYTES + 1, 0x7b) },
    { text: '' },
    { text: '\ufeff{}' },
    { text: JSON.stringify({ ...valid, __proto__: { type: 'hello' } }) },
  ];
}

/** Job specs: mostly well-formed, for pools that take them, do not exist or belong to another project. */
export const jobSpecArb = (pools: readonly string[]) =>
  fc.record(
    {
      name: fc.string({ maxLength: 300 }),
      pool: fc.oneof(fc.constantFrom(...pools), fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,10}$/), shortString),
      selector: fc.dictionary(fc.stringMatching(/^[a-z]{1,4}$/), fc.string({ maxLength: 4 }), { maxKeys: 2 }),
      requires: fc.record(
        { labels: fc.dictionary(fc.stringMatching(/^[a-z]{1,4}$/), fc.string({ maxLength: 4 }), { maxKeys: 2 }), gpus: intish, airgapped: fc.boolean(), gpuModel: shortString },
        { requiredKeys: [] },
      ),
      executor: fc.oneof(
        fc.record({ type: fc.constant('shell'), command: fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }), env: fc.dictionary(shortString, shortString, { maxKeys: 2 }) }, { requiredKeys: ['type', 'command'] }),
        fc.record({ type: fc.constant('docker'), image: shortString, command: fc.array(shortString, { maxLength: 2 }), pull: fc.constantFrom('never', 'always', 'sometimes') }, { requiredKeys: ['type', 'image'] }),
        jsonish,
      ),
      timeout: fc.oneof(fc.constantFrom('1s', '1h', '0s', '500ms', '-1s', '99999999h', 'soon'), shortString),
      retries: intish,
      idempotencyKey: fc.oneof(fc.constantFrom('k1', 'k2'), fc.string({ maxLength: 300 })),
    },
    { requiredKeys: ['executor'] },
  ) as fc.Arbitrary<Record<string, unknown>>;
