/**
 * The kernel activity: the last `%rlam` line the sidebar sent, how it ended, and the
 * outputs the kernel answered with. While a line runs the sidebar is busy and its
 * action buttons are disabled.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { OutputAreaModel } from '@jupyterlab/outputarea';
import { ISignal, Signal } from '@lumino/signaling';

import { KernelRunner } from './tokens';

export class ActivityModel {
  /** The outputs of the last line sent. */
  readonly outputs = new OutputAreaModel({ trusted: true });
  private command_ = '';
  private state_ = '';
  private busy_ = false;
  private disposed = false;
  private readonly changed_ = new Signal<this, void>(this);
  private readonly busyChanged_ = new Signal<this, void>(this);
  /** The command or its state changed. */
  readonly changed: ISignal<this, void> = this.changed_;
  /** A line started or ended running. */
  readonly busyChanged: ISignal<this, void> = this.busyChanged_;

  /**
   * @param runKernel runs a line with `outputs` as its output area's model
   * @param onError reports what went wrong (the sidebar's error banner)
   */
  constructor(
    private readonly runKernel: KernelRunner,
    private readonly onError: (error: unknown) => void
  ) {}

  /** The last line sent ('' before any). */
  get command(): string {
    return this.command_;
  }

  /** '' until a line reached a kernel, then 'running', 'ok', 'error' or 'abort'. */
  get state(): string {
    return this.state_;
  }

  get busy(): boolean {
    return this.busy_;
  }

  dispose(): void {
    if (this.disposed) {
      return;
    }
    this.disposed = true;
    this.outputs.dispose();
    Signal.clearData(this);
  }

  /** Send one `%rlam` line to the notebook's kernel; resolves to the reply status. */
  async send(
    code: string,
    sessionContext: ISessionContext | null
  ): Promise<string> {
    this.command_ = code;
    this.outputs.clear();
    this.changed_.emit();
    if (!sessionContext) {
      this.onError(new Error('Open the notebook this trace belongs to first.'));
      return 'error';
    }
    this.setBusy(true);
    this.setState('running');
    let status = 'error';
    try {
      status = await this.runKernel(code, sessionContext);
    } catch (error) {
      this.onError(error);
    } finally {
      this.setState(status);
      this.setBusy(false);
    }
    return status;
  }

  private setBusy(busy: boolean): void {
    this.busy_ = busy;
    this.busyChanged_.emit();
  }

  private setState(state: string): void {
    this.state_ = state;
    this.changed_.emit();
  }
}
