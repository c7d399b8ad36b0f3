/** The detail's title: the step's status, number and action, and whether the parent run shares it. */
import { IStepDetail } from '../../api';
import { h, statusIcon } from '../../dom';

export function detailTitle(step: IStepDetail): HTMLElement {
  return h(
    'div',
    { className: 'jp-rlam-detail-title' },
    statusIcon(step.status),
    h('span', {}, `Step ${step.seq} · `),
    h('code', {}, step.action),
    h('span', { className: 'jp-rlam-muted' }, ` ${step.status}`),
    step.inherited
      ? h('span', { className: 'jp-rlam-muted' }, ' (shared with parent)')
      : null
  );
}
