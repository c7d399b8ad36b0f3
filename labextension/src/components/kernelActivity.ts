/**
 * Below the step detail: the last `%rlam` line the sidebar sent (its state in
 * `data-state`) and the kernel's outputs for it.
 */
import { OutputArea } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { ActivityModel } from '../activityModel';
import { h } from '../dom';

export class KernelActivity extends Widget {
  /** The kernel's outputs (a sibling widget: add it after this one). */
  readonly output: OutputArea;
  private readonly commandLine: HTMLElement;

  constructor(
    private readonly model: ActivityModel,
    rendermime: IRenderMimeRegistry
  ) {
    const commandLine = h('div', { className: 'jp-rlam-activity-title' });
    super({ node: h('div', { className: 'jp-rlam-activity' }, commandLine) });
    this.commandLine = commandLine;
    this.output = new OutputArea({ model: model.outputs, rendermime });
    this.output.addClass('jp-rlam-activity-output');
    model.changed.connect(this.render, this);
  }

  render(): void {
    const { command, state } = this.model;
    this.commandLine.replaceChildren(
      h('code', { className: 'jp-rlam-command' }, command)
    );
    if (state) {
      this.commandLine.dataset.state = state;
    }
  }
}
