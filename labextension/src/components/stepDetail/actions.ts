/** The buttons under the step detail: replay to it, fork from it, diff the run, export the bundle. */
import { IStepDetail } from '../../api';
import { h } from '../../dom';
import { TraceModel } from '../../model';
import { actionButton } from '../button';

export function actionButtons(
  step: IStepDetail,
  model: TraceModel
): HTMLElement {
  const { actions } = model;
  const busy = model.activity.busy;
  return h(
    'div',
    { className: 'jp-rlam-actions' },
    actionButton(
      'Replay to here',
      'replay',
      () => void actions.replaySelected(),
      {
        busy,
        title:
          'Restore this run’s outputs up to this step in the kernel, without re-running'
      }
    ),
    actionButton('Fork from here…', 'fork', () => void actions.openFork(), {
      busy,
      title: `Start a new run from step ${step.seq} with changed parameters`
    }),
    actionButton('Diff with…', 'diff', () => actions.openDiff(), {
      busy,
      title: 'Compare this run with another, step by step'
    }),
    actionButton('Export bundle', 'export', () => void actions.exportBundle(), {
      busy,
      title: 'Write the notebook and its provenance into one zip'
    })
  );
}
