/** The diff form: pick another run (the parent, if any, first) to `%rlam diff` the selected one with. */
import { h } from '../dom';
import { TraceModel } from '../model';
import { actionButton } from './button';

export function diffForm(model: TraceModel): HTMLElement {
  const busy = model.activity.busy;
  const others = model.runs.filter(r => r.run_id !== model.selectedRunId);
  const select = h(
    'select',
    { className: 'jp-mod-styled', name: 'diff-with' },
    ...others.map(r =>
      h('option', { value: r.run_id }, `${r.name} (${r.run_id.slice(-6)})`)
    )
  );
  const parent = model.selectedRun?.parent_run_id;
  if (parent) {
    select.value = parent;
  }
  return h(
    'div',
    { className: 'jp-rlam-fork' },
    h('div', { className: 'jp-rlam-subtitle' }, 'Diff this run with'),
    others.length
      ? select
      : h(
          'p',
          { className: 'jp-rlam-muted' },
          'There is no other run to compare with.'
        ),
    h(
      'div',
      { className: 'jp-rlam-actions' },
      others.length
        ? actionButton(
            'Diff',
            'diff-submit',
            () => void model.actions.diff(select.value),
            { busy, accept: true }
          )
        : null,
      actionButton('Cancel', 'cancel', () => model.actions.close(), { busy })
    )
  );
}
