/** Above the step list: the run's name, its step counts, and the status and action filters. */
import { h } from '../dom';
import { TraceModel } from '../model';

export const STEP_FILTERS: [string, string][] = [
  ['', 'All steps'],
  ['failed,rejected', 'Failed or rejected'],
  ['failed', 'Failed'],
  ['interrupted', 'Interrupted (kernel died)'],
  ['rejected', 'Rejected'],
  ['succeeded', 'Succeeded'],
  ['cached', 'Cached']
];

/** "N steps · 2 failed · 1 cached" from the counts by status. */
function countsSummary(counts: Record<string, number>): string {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const summary = [`${total} steps`];
  for (const key of ['failed', 'rejected', 'interrupted', 'cached']) {
    if (counts[key]) {
      summary.push(`${counts[key]} ${key}`);
    }
  }
  return summary.join(' · ');
}

/** Redraw `node` for the selected run (empty when none is). */
export function renderStepsHeader(node: HTMLElement, model: TraceModel): void {
  const run = model.selectedRun;
  if (!run) {
    node.replaceChildren();
    return;
  }
  const info = model.stepsInfo;
  const status = h(
    'select',
    {
      className: 'jp-mod-styled jp-rlam-status-filter',
      title: 'Show only steps with this status',
      onchange: (event: Event) =>
        model.setStepFilter({
          status: (event.target as HTMLSelectElement).value
        })
    },
    ...STEP_FILTERS.map(([value, label]) => h('option', { value }, label))
  );
  status.value = model.statusFilter;
  const actions = h(
    'select',
    {
      className: 'jp-mod-styled jp-rlam-action-filter',
      title: 'Show only steps of this action',
      onchange: (event: Event) =>
        model.setStepFilter({
          action: (event.target as HTMLSelectElement).value
        })
    },
    h('option', { value: '' }, 'All actions'),
    ...(info?.actions ?? []).map(a => h('option', { value: a }, a))
  );
  actions.value = model.actionFilter;
  node.replaceChildren(
    h(
      'div',
      { className: 'jp-rlam-steps-title' },
      h('span', { className: 'jp-rlam-run-name' }, run.name),
      h(
        'span',
        { className: 'jp-rlam-step-counts' },
        countsSummary(info?.counts ?? {})
      )
    ),
    h('div', { className: 'jp-rlam-section-bar' }, status, actions)
  );
}
