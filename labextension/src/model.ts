/**
 * The sidebar's state and the one place it changes: the followed notebook, its runs,
 * the selected run and step, the step pages and detail, the open form, the kernel
 * activity, the MCP proposals waiting for approval, and the last error. It reads the
 * server through `TraceApi`, polls the
 * store's stamp, and says what changed through signals; the views read the state
 * back from here and keep no copies of it.
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { ActionsModel } from './actionsModel';
import { ActivityModel } from './activityModel';
import { ApprovalsModel } from './approvalsModel';
import { IRun, IStepDetail, IStepSummary, IStepsPage, TraceApi } from './api';
import { PAGE_SIZE, StepPages } from './stepPages';
import {
  INotebookLink,
  IRunsChange,
  ITraceModelOptions,
  StepsChange
} from './tokens';

const POLL_MS = 1500;

export class TraceModel {
  readonly api = new TraceApi();
  readonly activity: ActivityModel;
  /** Replay, fork, diff and export, and the forms they open. */
  readonly actions: ActionsModel;
  /** What MCP clients wait for a person to approve (every notebook of the server). */
  readonly approvals: ApprovalsModel;
  private notebook_: INotebookLink | null = null;
  private runs_: IRun[] = [];
  private stamp = '';
  private store_ = '';
  private error_ = '';
  private runFilter_ = '';
  private readonly collapsed = new Set<string>();
  private selectedRunId_: string | null = null;
  private statusFilter_ = '';
  private actionFilter_ = '';
  private readonly pages = new StepPages();
  private selectedSeq_: number | null = null;
  private detail_: IStepDetail | null = null;
  private readonly poll: Poll;
  private readonly runsChanged_ = new Signal<this, IRunsChange>(this);
  private readonly errorChanged_ = new Signal<this, void>(this);
  private readonly treeChanged_ = new Signal<this, void>(this);
  private readonly stepsChanged_ = new Signal<this, StepsChange>(this);
  private readonly detailChanged_ = new Signal<this, void>(this);
  /** The runs, the notebook or the selected run changed. */
  readonly runsChanged: ISignal<this, IRunsChange> = this.runsChanged_;
  /** The error banner's message changed. */
  readonly errorChanged: ISignal<this, void> = this.errorChanged_;
  /** The run filter changed, or a run was collapsed or expanded. */
  readonly treeChanged: ISignal<this, void> = this.treeChanged_;
  readonly stepsChanged: ISignal<this, StepsChange> = this.stepsChanged_;
  /** The selected step's detail arrived. */
  readonly detailChanged: ISignal<this, void> = this.detailChanged_;

  constructor(options: ITraceModelOptions) {
    this.activity = new ActivityModel(options.runKernel, error =>
      this.showError(error)
    );
    this.actions = new ActionsModel(this);
    this.approvals = new ApprovalsModel(this.api);
    this.poll = new Poll({
      auto: true,
      factory: () => this.tick(),
      frequency: { interval: POLL_MS, backoff: true, max: 30 * 1000 },
      name: 'rlam:trace',
      standby: () => !options.isVisible() || 'when-hidden'
    });
  }

  get notebook(): INotebookLink | null {
    return this.notebook_;
  }
  /** The followed notebook's path ('' when none is open). */
  get path(): string {
    return this.api.path;
  }
  /** The store folder the server reads. */
  get store(): string {
    return this.store_;
  }
  get error(): string {
    return this.error_;
  }
  get runs(): readonly IRun[] {
    return this.runs_;
  }
  /** '' for all runs, 'problems' for the runs with failures. */
  get runFilter(): string {
    return this.runFilter_;
  }
  get selectedRunId(): string | null {
    return this.selectedRunId_;
  }
  get selectedRun(): IRun | undefined {
    return this.runs_.find(r => r.run_id === this.selectedRunId_);
  }
  get statusFilter(): string {
    return this.statusFilter_;
  }
  get actionFilter(): string {
    return this.actionFilter_;
  }
  /** The latest step page's reply (total, counts, actions); null before one. */
  get stepsInfo(): IStepsPage | null {
    return this.pages.info;
  }
  get selectedSeq(): number | null {
    return this.selectedSeq_;
  }
  /** The selected step's detail once loaded (it may lag behind `selectedSeq`). */
  get detail(): IStepDetail | null {
    return this.detail_;
  }

  dispose(): void {
    this.poll.dispose();
    this.activity.dispose();
    this.approvals.dispose();
    Signal.clearData(this);
  }

  /** Follow a notebook: its store is the `.rlam` folder beside it. */
  setNotebook(link: INotebookLink | null): void {
    const path = link?.path ?? '';
    const changed = path !== this.api.path || !this.notebook_;
    this.notebook_ = link;
    this.api.path = path;
    if (changed) {
      this.runs_ = [];
      this.selectedRunId_ = null;
      this.selectedSeq_ = null;
      this.detail_ = null;
      this.stamp = '';
      this.resetPages();
      this.runsChanged_.emit({ picked: false });
      void this.refresh(true);
    }
  }

  private async tick(): Promise<void> {
    try {
      const reply = await this.api.stamp();
      if (reply.stamp !== this.stamp) {
        await this.refresh();
      }
    } catch (error) {
      this.showError(error);
      throw error;
    }
  }

  /** Reload runs, the visible steps and the open step from the server. */
  async refresh(force = false): Promise<void> {
    try {
      const reply = await this.api.runs();
      const changed = force || reply.stamp !== this.stamp;
      this.stamp = reply.stamp;
      this.store_ = reply.store;
      this.runs_ = reply.runs;
      this.error_ = '';
      if (!this.selectedRun) {
        const latest = this.runs_[this.runs_.length - 1];
        this.selectedRunId_ = latest ? latest.run_id : null;
        this.selectedSeq_ = null;
        this.detail_ = null;
      }
      if (changed) {
        this.resetPages();
      }
      this.runsChanged_.emit({ picked: false });
      if (changed && this.selectedRunId_ && this.selectedSeq_ !== null) {
        await this.loadDetail(this.selectedRunId_, this.selectedSeq_);
      }
    } catch (error) {
      this.showError(error);
    }
  }

  showError(error: unknown): void {
    this.error_ = error instanceof Error ? error.message : String(error);
    this.errorChanged_.emit();
  }

  setRunFilter(filter: string): void {
    this.runFilter_ = filter;
    this.treeChanged_.emit();
  }

  isCollapsed(runId: string): boolean {
    return this.collapsed.has(runId);
  }

  /** Hide or show a run's forks in the tree. */
  toggleCollapsed(runId: string): void {
    if (!this.collapsed.delete(runId)) {
      this.collapsed.add(runId);
    }
    this.treeChanged_.emit();
  }

  selectRun(runId: string): void {
    if (runId === this.selectedRunId_) {
      return;
    }
    this.selectedRunId_ = runId;
    this.selectedSeq_ = null;
    this.detail_ = null;
    this.actions.close(false);
    this.resetPages();
    this.runsChanged_.emit({ picked: true });
  }

  /** Show only the steps with these statuses (comma-separated) and of this action ('' for all). */
  setStepFilter(filter: { status?: string; action?: string }): void {
    this.statusFilter_ = filter.status ?? this.statusFilter_;
    this.actionFilter_ = filter.action ?? this.actionFilter_;
    this.resetPages();
    this.stepsChanged_.emit('filter');
  }

  /** The step at a position of the filtered list, if its page is loaded. */
  stepAt(index: number): IStepSummary | undefined {
    return this.pages.stepAt(index);
  }

  /** The position of a step among the loaded pages of the list, or -1. */
  indexOf(seq: number): number {
    return this.pages.indexOf(seq);
  }

  /** Fetch the page of the filtered list a position lives on (once at a time). */
  async loadPageOf(index: number): Promise<void> {
    const runId = this.selectedRunId_;
    if (!runId) {
      return;
    }
    const fetch = (offset: number, limit: number): Promise<IStepsPage> =>
      this.api.steps(
        runId,
        offset,
        limit,
        this.statusFilter_,
        this.actionFilter_
      );
    try {
      await this.pages.load(
        Math.floor(index / PAGE_SIZE),
        fetch,
        (reply, first) => {
          this.stepsChanged_.emit(first ? 'first-page' : 'page');
          if (reply.stamp !== this.stamp) {
            // The store moved on between the runs and this page: poll now (single
            // flight) so the tree and counts catch up with the list.
            void this.poll.refresh();
          }
        }
      );
    } catch (error) {
      this.showError(error);
    }
  }

  selectStep(seq: number): void {
    if (!this.selectedRunId_) {
      return;
    }
    this.selectedSeq_ = seq;
    this.actions.close(false);
    this.stepsChanged_.emit('selection');
    void this.loadDetail(this.selectedRunId_, seq);
  }

  /** The PNG of a figure artifact. */
  image(artifactId: string): Promise<Blob> {
    return this.api.image(artifactId);
  }

  private async loadDetail(runId: string, seq: number): Promise<void> {
    try {
      const detail = await this.api.step(runId, seq);
      if (runId === this.selectedRunId_ && seq === this.selectedSeq_) {
        this.detail_ = detail;
        this.detailChanged_.emit();
      }
    } catch (error) {
      this.showError(error);
    }
  }

  private resetPages(): void {
    this.pages.reset(
      `${this.selectedRunId_}|${this.statusFilter_}|${this.actionFilter_}|${this.stamp}`
    );
  }
}
