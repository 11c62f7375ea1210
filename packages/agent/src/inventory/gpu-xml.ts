import type { Gpu, MigDevice, MigMode } from '@rbtk/protocol/runner';
import { XMLParser } from 'fast-xml-parser';

/** What one `nvidia-smi -q -x` document says about the host's GPUs. */
export interface NvidiaSmiReport {
  gpus: Gpu[];
  driverVersion: string | null;
  cudaVersion: string | null;
  /** Oddities worth a log line (attached_gpus disagreeing with the GPUs listed). */
  warnings: string[];
}

/** Thrown when the text is not an nvidia-smi XML report at all. */
export class NvidiaSmiParseError extends Error {
  override readonly name = 'NvidiaSmiParseError';
  readonly code = 'nvidia_smi_unparsable';
}

type Node = Record<string, unknown>;

/*
 * isArray keeps <gpu> and <mig_device> lists lists when there is one of them,
 * so a 1-GPU host and an 8-GPU host take the same path. The DOCTYPE line is
 * optional (some drivers omit it) and never used to guess the schema.
 */
const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
  isArray: (name, jpath) => jpath === 'nvidia_smi_log.gpu' || name === 'mig_device',
});

/**
 * Reads the GPUs out of `nvidia-smi -q -x`, schema v9 to v13. Each GPU's index
 * is its position in the document (nvidia-smi's own enumeration order), not
 * <minor_number>; the GPU count is the number of <gpu> elements, never
 * <attached_gpus> (trimmed captures and hot-unplug make them disagree).
 */
export function parseNvidiaSmiXml(text: string): NvidiaSmiReport {
  let doc: Node;
  try {
    doc = parser.parse(text) as Node;
  } catch (err) {
    throw new NvidiaSmiParseError(`nvidia-smi printed XML that does not parse: ${(err as Error).message}`);
  }
  const log = doc.nvidia_smi_log;
  if (!isNode(log)) throw new NvidiaSmiParseError('nvidia-smi printed no <nvidia_smi_log> document');

  const gpuNodes = Array.isArray(log.gpu) ? log.gpu.filter(isNode) : [];
  const gpus = gpuNodes.map((node, index) => parseGpu(node, index));
  const warnings: string[] = [];
  const attached = integer(log.attached_gpus);
  if (attached !== null && attached !== gpus.length) {
    warnings.push(`nvidia-smi says ${attached} GPUs are attached but lists ${gpus.length}; using the ${gpus.length} it lists`);
  }
  return { gpus, driverVersion: version(log.driver_version), cudaVersion: version(log.cuda_version), warnings };
}

function parseGpu(node: Node, index: number): Gpu {
  const uuid = text(node.uuid);
  if (!uuid) throw new NvidiaSmiParseError(`GPU ${index} has no <uuid>`);
  return {
    index,
    uuid,
    name: text(node.product_name) ?? 'unknown',
    // The GPU's own <fb_memory_usage>, a direct child: MIG devices carry theirs one level down.
    memoryMiB: mebibytes(child(node, 'fb_memory_usage')?.total) ?? 0,
    mig: { mode: migMode(node), devices: migDevices(node) },
  };
}

function migMode(node: Node): MigMode {
  const current = text(child(node, 'mig_mode')?.current_mig)?.toLowerCase();
  if (current === 'enabled') return 'enabled';
  if (current === 'disabled') return 'disabled';
  // Absent (drivers before 450) or N/A (a GPU without MIG).
  return 'unsupported';
}

function migDevices(node: Node): MigDevice[] {
  const list = child(node, 'mig_devices')?.mig_device;
  if (!Array.isArray(list)) return []; // "None" when MIG is off
  return list.filter(isNode).map((d, i) => ({
    index: integer(d.index) ?? i,
    gpuInstanceId: integer(d.gpu_instance_id),
    computeInstanceId: integer(d.compute_instance_id),
    memoryMiB: mebibytes(child(d, 'fb_memory_usage')?.total),
  }));
}

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function child(node: Node, key: string): Node | undefined {
  const value = node[key];
  return isNode(value) ? value : undefined;
}

function text(value: unknown): string | null {
  if (typeof value !== 'string' && typeof value !== 'number') return null;
  const s = String(value).trim();
  return s === '' ? null : s;
}

/** "Not Found", "N/A" or absent: null. */
function version(value: unknown): string | null {
  const s = text(value);
  return s === null || /^(n\/a|not found|not supported)$/i.test(s) ? null : s;
}

function integer(value: unknown): number | null {
  const s = text(value);
  return s !== null && /^\d+$/.test(s) ? Number(s) : null;
}

/** "32510 MiB" -> 32510; anything else (N/A) -> null. */
function mebibytes(value: unknown): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*MiB$/i.exec(text(value) ?? '');
  return m ? Number(m[1]) : null;
}
