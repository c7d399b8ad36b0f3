/** The step's error and traceback, above its fields (null when it did not fail). */
import { IStepDetail } from '../../api';
import { h } from '../../dom';

export function stepError(step: IStepDetail): HTMLElement | null {
  if (!step.error_type && !step.error_message) {
    return null;
  }
  return h(
    'div',
    { className: 'jp-rlam-error' },
    h('strong', {}, `${step.error_type ?? 'Error'}: `),
    step.error_message ?? '',
    step.traceback
      ? h('pre', { className: 'jp-rlam-traceback' }, step.traceback)
      : null
  );
}
