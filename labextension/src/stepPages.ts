/**
 * The pages of the selected run's (filtered) steps fetched so far.
 *
 * A run can have thousands of steps: the list asks only for the pages with rows in
 * view. A reset (another run, filter or store stamp) starts a new generation, and
 * replies asked for by an older one are dropped when they arrive.
 */
import { IStepSummary, IStepsPage } from './api';

export const PAGE_SIZE = 100;

export class StepPages {
  private readonly pages = new Map<number, IStepSummary[]>();
  private readonly pending = new Set<number>();
  private generation = '';
  private last: IStepsPage | null = null;

  /** The latest page's reply (total, counts by status, actions); null before one. */
  get info(): IStepsPage | null {
    return this.last;
  }

  /** Forget every page; `generation` names what the next pages are fetched for. */
  reset(generation: string): void {
    this.pages.clear();
    this.pending.clear();
    this.last = null;
    this.generation = generation;
  }

  /** The step at a position of the filtered list, if its page is loaded. */
  stepAt(index: number): IStepSummary | undefined {
    return this.pages.get(Math.floor(index / PAGE_SIZE))?.[index % PAGE_SIZE];
  }

  /** The position of a step among the loaded pages, or -1. */
  indexOf(seq: number): number {
    for (const [page, steps] of this.pages) {
      const index = steps.findIndex(s => s.seq === seq);
      if (index >= 0) {
        return page * PAGE_SIZE + index;
      }
    }
    return -1;
  }

  /**
   * Fetch a page unless it is already on its way; `onKept` gets its reply if no
   * reset came in between (`first` when it is the first page kept).
   */
  async load(
    page: number,
    fetch: (offset: number, limit: number) => Promise<IStepsPage>,
    onKept: (reply: IStepsPage, first: boolean) => void
  ): Promise<void> {
    if (this.pending.has(page)) {
      return;
    }
    const generation = this.generation;
    this.pending.add(page);
    try {
      const reply = await fetch(page * PAGE_SIZE, PAGE_SIZE);
      if (generation !== this.generation) {
        return;
      }
      const first = this.last === null;
      this.pages.set(page, reply.steps);
      this.last = reply;
      onKept(reply, first);
    } finally {
      if (generation === this.generation) {
        this.pending.delete(page);
      }
    }
  }
}
