import { z } from 'zod';

export const MigMode = z.enum(['enabled', 'disabled', 'unsupported']);
export type MigMode = z.infer<typeof MigMode>;

export const MigDevice = z.object({
  /** MIG device index within its GPU. */
  index: z.number().int().nonnegative(),
  /** GPU instance / compute instance ids, as nvidia-smi reports them. */
  gpuInstanceId: z.number().int().nullable(),
  computeInstanceId: z.number().int().nullable(),
  memoryMiB: z.number().nonnegative().nullable(),
});
export type MigDevice = z.infer<typeof MigDevice>;

/** One physical GPU as `nvidia-smi -q -x` shows it. */
export const Gpu = z.object({
  /** Position in nvidia-smi's output (its enumeration order), not the minor number. */
  index: z.number().int().nonnegative(),
  uuid: z.string().min(1),
  name: z.string(),
  /** The GPU's own framebuffer total (not a MIG device's). */
  memoryMiB: z.number().nonnegative(),
  mig: z.object({ mode: MigMode, devices: z.array(MigDevice) }),
});
export type Gpu = z.infer<typeof Gpu>;

/** What a host can offer: its GPUs, and whether Docker can hand them to containers. */
export const GpuInventory = z.object({
  gpus: z.array(Gpu),
  driverVersion: z.string().nullable(),
  cudaVersion: z.string().nullable(),
  /** True when containers can get these GPUs (the NVIDIA container toolkit is installed). */
  usable: z.boolean(),
  /** Why not, when usable is false and there are GPUs. */
  reason: z.string().optional(),
});
export type GpuInventory = z.infer<typeof GpuInventory>;

export const EMPTY_GPU_INVENTORY: GpuInventory = { gpus: [], driverVersion: null, cudaVersion: null, usable: false };
