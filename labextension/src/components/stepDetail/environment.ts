/** Where the step ran: the same environment as its run, or the fingerprint that differs. */
import { IStepDetail } from '../../api';
import { h, shortHash } from '../../dom';

export function environmentField(step: IStepDetail): HTMLElement {
  const env = step.environment;
  return h(
    'details',
    { className: 'jp-rlam-env' },
    h(
      'summary',
      {},
      env.same_as_run
        ? '= run environment'
        : `differs from the run's (${shortHash(env.env_id)})`
    ),
    h(
      'pre',
      { className: 'jp-rlam-preview' },
      JSON.stringify(env.fingerprint, null, 1) ?? ''
    )
  );
}
