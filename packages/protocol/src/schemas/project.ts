import { z } from 'zod';
import { Name, Timestamp } from './common.js';

export const Project = z.object({
  name: Name,
  createdAt: Timestamp,
});
export type Project = z.infer<typeof Project>;

export const ProjectCreate = z.object({ name: Name }).strict();
export type ProjectCreate = z.infer<typeof ProjectCreate>;
