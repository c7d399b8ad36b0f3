/** The sidebar's header: the notebook it follows (the store's path as its tooltip) and the last error. */
import { Widget } from '@lumino/widgets';

import { h } from '../dom';
import { TraceModel } from '../model';

export class PanelHeader extends Widget {
  constructor(private readonly model: TraceModel) {
    super({ node: h('div', { className: 'jp-rlam-header' }) });
    model.runsChanged.connect(this.render, this);
    model.errorChanged.connect(this.render, this);
    this.render();
  }

  render(): void {
    const { path, store, error } = this.model;
    const name = path ? path.split('/').pop() : 'no notebook open';
    this.node.replaceChildren(
      h('span', { className: 'jp-rlam-title' }, 'R-LAM'),
      h('span', { className: 'jp-rlam-notebook', title: store || '' }, name),
      ...(error ? [h('div', { className: 'jp-rlam-error-banner' }, error)] : [])
    );
  }
}
