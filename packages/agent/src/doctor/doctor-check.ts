/** One line of `rbtk-runner doctor`: what was checked, what was found, and how to fix it. */
export interface DoctorCheck {
  name: string;
  /** fail: the host cannot run the jobs its pool expects; skip: does not apply to this runner. */
  status: 'ok' | 'fail' | 'skip';
  verdict: string;
  /** What to do about a failure. */
  fix?: string;
}

export const ok = (name: string, verdict: string): DoctorCheck => ({ name, status: 'ok', verdict });
export const fail = (name: string, verdict: string, fix: string): DoctorCheck => ({ name, status: 'fail', verdict, fix });
export const skip = (name: string, verdict: string): DoctorCheck => ({ name, status: 'skip', verdict });
