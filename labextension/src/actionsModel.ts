/**
 * The sidebar's actions on the selected run and step (replay, fork, diff, export),
 * sent to the notebook's kernel as `%rlam` lines, and the fork and diff forms they
 * open under the step detail.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { IActionSchema, IStepDetail } from './api';
import {
  diffCommand,
  exportCommand,
  forkCommand,
  replayCommand
} from './commands';
import type { TraceModel } from './model';
import { FormMode, IForkRequest } from './tokens';

export class ActionsModel {
  private mode_: FormMode = 'none';
  private fork_: IForkRequest | null = null;
  private schemas: Record<string, IActionSchema> | null = null;
  private readonly changed_ = new Signal<this, void>(this);
  /** A form opened or closed. */
  readonly changed: ISignal<this, void> = this.changed_;

  constructor(private readonly model: TraceModel) {}

  get mode(): FormMode {
    return this.mode_;
  }

  /** What the fork form was last opened with. */
  get forkRequest(): IForkRequest | null {
    return this.fork_;
  }

  /** Close the open form; `redraw` false when the caller's change redraws anyway. */
  close(redraw = true): void {
    this.mode_ = 'none';
    if (redraw) {
      this.changed_.emit();
    }
  }

  /** Open the fork form for the selected step. */
  async openFork(): Promise<void> {
    const step = this.model.detail;
    if (!step) {
      return;
    }
    if (this.schemas === null) {
      try {
        this.schemas = (await this.model.api.actions()).actions;
      } catch {
        this.schemas = {};
      }
    }
    const known = this.schemas[step.action];
    const recorded = step.params ?? {};
    // Use the server's schema only when it matches what was recorded (same names).
    const schema =
      known &&
      Object.keys(recorded).every(
        k => k in (known.params_schema.properties ?? {})
      )
        ? known.params_schema
        : null;
    this.fork_ = { schema, recorded };
    this.mode_ = 'fork';
    this.changed_.emit();
  }

  /** Fork the selected run at `step` with changed parameters; select the new run. */
  async fork(
    step: IStepDetail,
    changes: Record<string, string>,
    name?: string
  ): Promise<void> {
    const runId = this.model.selectedRunId;
    if (!runId) {
      return;
    }
    const before = new Set(this.model.runs.map(r => r.run_id));
    const status = await this.send(forkCommand(runId, step.seq, changes, name));
    if (status !== 'ok') {
      return;
    }
    this.close(false);
    await this.model.refresh(true);
    const child = this.model.runs.find(
      r => !before.has(r.run_id) && r.parent_run_id === runId
    );
    if (child) {
      this.model.selectRun(child.run_id);
    }
  }

  /** Replay the selected run up to the selected step, in the kernel. */
  async replaySelected(): Promise<void> {
    const runId = this.model.selectedRunId;
    const step = this.model.detail;
    if (runId && step) {
      await this.send(replayCommand(runId, step.seq));
      await this.model.refresh();
    }
  }

  openDiff(): void {
    if (!this.model.selectedRunId) {
      return;
    }
    this.mode_ = 'diff';
    this.changed_.emit();
  }

  /** Close the diff form and `%rlam diff` the selected run with `otherRunId`. */
  async diff(otherRunId: string): Promise<void> {
    const runId = this.model.selectedRunId!;
    this.close();
    await this.send(diffCommand(runId, otherRunId));
  }

  /** Save the notebook, then `%rlam export` it with its trace into one zip. */
  async exportBundle(): Promise<void> {
    const notebook = this.model.notebook;
    if (!notebook) {
      return;
    }
    await notebook.save();
    const name = notebook.path.split('/').pop() ?? notebook.path;
    await this.send(exportCommand(name));
  }

  /** Send one `%rlam` line to the notebook's kernel; its outputs show below the detail. */
  private send(code: string): Promise<string> {
    const notebook = this.model.notebook;
    return this.model.activity.send(code, notebook?.sessionContext ?? null);
  }
}
