import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Gpu } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import { NvidiaSmiParseError, parseNvidiaSmiXml } from '../src/inventory/gpu-xml.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'nvidia-smi');
const read = (file: string) => readFile(join(FIXTURES, file), 'utf8');

interface Expected {
  driver: string;
  cuda: string | null;
  /** [uuid, name, memoryMiB] in document order. */
  gpus: [string, string, number][];
  mig?: 'enabled' | 'disabled' | 'unsupported';
  /** MIG devices of GPU 0: [gpuInstanceId, memoryMiB]. */
  migDevices?: [number, number][];
  /** attached_gpus disagrees with the listed GPUs. */
  attachedMismatch?: boolean;
}

/** Every value as fixtures/nvidia-smi/SOURCES.md lists it. */
const EXPECTED: Record<string, Expected> = {
  'telegraf-a100-sxm4-80gb-mig-v12.xml': {
    driver: '535.54.03',
    cuda: '12.2',
    gpus: [['GPU-513536b6-7d19-9063-b049-1e69664bb298', 'NVIDIA A100-SXM4-80GB', 81920]],
    mig: 'enabled',
    migDevices: [[3, 19968], [4, 19968], [5, 19968], [6, 19968]],
    attachedMismatch: true,
  },
  'netdata-a100-sxm4-40gb-mig-v11.xml': {
    driver: '510.47.03',
    cuda: '11.6',
    gpus: [['GPU-27b94a00-ed54-5c24-b1fd-1054085de32a', 'NVIDIA A100-SXM4-40GB', 40960]],
    mig: 'enabled',
    migDevices: [[1, 19968], [2, 19968]],
  },
  'datakit-8x-tesla-v100s-pcie-32gb-v11.xml': {
    driver: '460.73.01',
    cuda: '11.2',
    gpus: [
      'GPU-76098dc1-d3bc-9a1b-7ea6-f7b48837829e',
      'GPU-bbf7a241-bf9a-eb90-b2fb-d213294faf48',
      'GPU-8f75e71c-23dd-a060-d997-4caf592954db',
      'GPU-3181eb56-505c-8214-ba05-c132f68f89b8',
      'GPU-2aa87d54-d4ff-2900-812b-1a4b7e119583',
      'GPU-39c3a168-9034-0b5a-223a-1042f30a9242',
      'GPU-d2446f91-171e-1b54-515d-9d9b03484ddf',
      'GPU-1d955959-c95b-4f40-2cac-100d3006ffe2',
    ].map((u) => [u, 'Tesla V100S-PCIE-32GB', 32510]),
    mig: 'unsupported',
  },
  'openpai-4x-tesla-k80-out-of-order-v10.xml': {
    driver: '430.26',
    cuda: null, // "Not Found"
    // Document order, not minor_number order (1, 2, 3, 0).
    gpus: [
      ['GPU-c3b26f7a-8dcb-619c-fa1b-8029265a4db0', 'Tesla K80', 11441],
      ['GPU-b01b80eb-0f18-1df0-cf88-0725bd90f1e1', 'Tesla K80', 11441],
      ['GPU-30bc2701-3bc2-5f35-0ebd-9867a077e138', 'Tesla K80', 11441],
      ['GPU-3341aba2-f01d-2c1f-7dd4-e389779faec2', 'Tesla K80', 11441],
    ],
    mig: 'unsupported',
  },
  'openpai-2x-rtx-2080ti-v10.xml': {
    driver: '410.73',
    cuda: '10.0',
    gpus: [
      ['GPU-57567e11-0be2-381b-5132-2ad95c262e58', 'GeForce RTX 2080 Ti', 10989],
      ['GPU-ef1d0068-5bfd-f1e4-7e79-ff35d71d44b8', 'GeForce RTX 2080 Ti', 10989],
    ],
    mig: 'unsupported',
  },
  'openpai-gtx-1070-v9-no-cuda-version.xml': {
    driver: '384.66',
    cuda: null, // element absent
    gpus: [
      ['GPU-e511a7b2-f9d5-ba47-9b98-853732ca6c1b', 'GeForce GTX 1070', 8112],
      ['GPU-28daffaf-8abe-aaf8-c298-4bd13aecb5e6', 'GeForce GTX 1070', 8114],
    ],
    mig: 'unsupported',
    attachedMismatch: true,
  },
  'telegraf-tesla-t4-v11.xml': {
    driver: '515.105.01',
    cuda: '11.7',
    gpus: [['GPU-d37e67a5-91dd-3774-a5cb-99096249601a', 'Tesla T4', 15360]],
    mig: 'unsupported',
  },
  'netdata-rtx-2080-windows-wddm-v11.xml': {
    driver: '516.59',
    cuda: '11.7',
    gpus: [['GPU-fbd55ed4-1eec-4423-0a47-ad594b4333e3', 'NVIDIA GeForce RTX 2080', 8192]],
    mig: 'unsupported',
  },
  'telegraf-rtx-3080-v13.xml': {
    driver: '595.58.03',
    cuda: '13.2',
    gpus: [['GPU-19d6d965-2acc-f646-00f8-4c76979aabb4', 'NVIDIA GeForce RTX 3080', 10240]],
    mig: 'unsupported',
  },
  'telegraf-gtx-1660-ti-graphics-device-no-doctype.xml': {
    driver: '418.43',
    cuda: '10.1',
    gpus: [['GPU-304a277d-3545-63b8-3a36-dfde3c992989', 'Graphics Device', 5912]],
    mig: 'unsupported',
  },
};

describe('parseNvidiaSmiXml against every XML capture in fixtures/nvidia-smi', () => {
  for (const [file, want] of Object.entries(EXPECTED)) {
    it(file, async () => {
      const report = parseNvidiaSmiXml(await read(file));
      expect(report.driverVersion).toBe(want.driver);
      expect(report.cudaVersion).toBe(want.cuda);
      expect(report.gpus.map((g) => [g.uuid, g.name, g.memoryMiB])).toEqual(want.gpus);
      expect(report.gpus.map((g) => g.index)).toEqual(want.gpus.map((_, i) => i));
      for (const gpu of report.gpus) {
        expect(Gpu.parse(gpu)).toEqual(gpu); // the wire schema accepts it as is
        expect(gpu.mig.mode).toBe(want.mig);
      }
      const devices = report.gpus[0]!.mig.devices;
      expect(devices.map((d) => [d.gpuInstanceId, d.memoryMiB])).toEqual(want.migDevices ?? []);
      if (want.migDevices) expect(devices.map((d) => d.index)).toEqual(want.migDevices.map((_, i) => i));
      expect(report.warnings.length > 0).toBe(want.attachedMismatch === true);
    });
  }

  it('covers every XML file in the fixture directory', async () => {
    const { readdir } = await import('node:fs/promises');
    const files = (await readdir(FIXTURES)).filter((f) => f.endsWith('.xml')).sort();
    expect(files).toEqual(Object.keys(EXPECTED).sort());
  });

  it('says what is wrong with text that is not an nvidia-smi report', () => {
    expect(() => parseNvidiaSmiXml('NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver.')).toThrow(NvidiaSmiParseError);
    expect(() => parseNvidiaSmiXml('<other/>')).toThrow(/no <nvidia_smi_log>/);
    expect(parseNvidiaSmiXml('<nvidia_smi_log><attached_gpus>0</attached_gpus></nvidia_smi_log>').gpus).toEqual([]);
  });
});
