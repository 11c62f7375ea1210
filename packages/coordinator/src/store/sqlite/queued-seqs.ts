/**
 * One pool's queued jobs by seq, oldest first: the queue a dispatch pass or
 * a handoff reads, kept in memory so that reading it costs no query.
 *
 * A job joins at the end (a new job has the highest seq) or, requeued, back
 * at its own place. A job that leaves (assigned, cancelled) is only marked:
 * it is dropped once it reaches the head or when gone ones outnumber the
 * rest, so leaving costs O(1) and the list stays sorted without a splice
 * per job.
 */
export class QueuedSeqs {
  /** Ascending; entries before `head` are dropped, later ones may be gone. */
  private seqs: number[] = [];
  private head = 0;
  /** Queued now. */
  private readonly queued = new Set<number>();
  /** In `seqs` at or after `head`, queued or gone. */
  private readonly listed = new Set<number>();

  get size(): number {
    return this.queued.size;
  }

  add(seq: number): void {
    this.queued.add(seq);
    if (this.listed.has(seq)) return; // gone and back before it was dropped: its place is still there
    this.listed.add(seq);
    const last = this.seqs.length > this.head ? this.seqs[this.seqs.length - 1]! : -Infinity;
    if (seq > last) this.seqs.push(seq);
    else this.seqs.splice(this.firstAfter(seq - 1), 0, seq); // requeued: rare, and back at its own place
  }

  delete(seq: number): void {
    if (!this.queued.delete(seq)) return;
    if (this.seqs.length - this.head > 2 * this.queued.size + 64) this.compact();
  }

  /** Up to `limit` queued seqs after `afterSeq`, in order. */
  read(afterSeq: number, limit: number): number[] {
    this.dropGoneHead();
    const out: number[] = [];
    for (let i = afterSeq > 0 ? this.firstAfter(afterSeq) : this.head; i < this.seqs.length && out.length < limit; i++) {
      const seq = this.seqs[i]!;
      if (this.queued.has(seq)) out.push(seq);
    }
    return out;
  }

  private dropGoneHead(): void {
    while (this.head < this.seqs.length && !this.queued.has(this.seqs[this.head]!)) this.listed.delete(this.seqs[this.head++]!);
    // The dropped prefix is memory too: given back once it is most of the array.
    if (this.head > 1024 && this.head * 2 > this.seqs.length) {
      this.seqs = this.seqs.slice(this.head);
      this.head = 0;
    }
  }

  private compact(): void {
    this.seqs = this.seqs.slice(this.head).filter((s) => this.queued.has(s));
    this.head = 0;
    this.listed.clear();
    for (const s of this.seqs) this.listed.add(s);
  }

  /** The index of the first seq above `seq`, at or after `head` (binary search). */
  private firstAfter(seq: number): number {
    let lo = this.head;
    let hi = this.seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seqs[mid]! <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
