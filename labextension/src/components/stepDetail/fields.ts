/**
 * The step's fields as a two-column table: parameters, seed, time, inputs, outputs,
 * cache and recovery links, environment, LLM call, approvals, history, source.
 */
import { IStepDetail } from '../../api';
import { formatDuration, formatValue, h } from '../../dom';
import { environmentField } from './environment';
import { inputLinks } from './inputs';
import { llmCallField } from './llmCall';
import { ImageSource, outputArtifacts } from './outputs';

/** What the fields link to outside the detail. */
export interface IFieldLinks {
  /** Open another step of the run (an input's producer). */
  openStep(seq: number): void;
  image: ImageSource;
}

type Field = [string, Node | string | null];

function paramsField(step: IStepDetail): HTMLElement {
  const params = Object.entries(step.params ?? {});
  if (!params.length) {
    return h('span', { className: 'jp-rlam-muted' }, 'none');
  }
  return h(
    'span',
    {},
    ...params.map(([k, v]) =>
      h('code', { className: 'jp-rlam-param' }, `${k}=${formatValue(v)}`)
    )
  );
}

function fields(step: IStepDetail, links: IFieldLinks): Field[] {
  const rows: Field[] = [];
  rows.push(['params', paramsField(step)]);
  rows.push([
    'seed',
    step.seed === null
      ? ''
      : String(step.seed) + (step.determinism ? ` · ${step.determinism}` : '')
  ]);
  if (step.duration_ms !== null) {
    rows.push(['time', formatDuration(step.duration_ms)]);
  }
  if (step.input_links.length) {
    rows.push(['inputs', inputLinks(step, links.openStep)]);
  }
  if (step.output_artifacts.length) {
    rows.push(['outputs', outputArtifacts(step, links.image)]);
  }
  if (step.cached_from) {
    rows.push(['cached', `from ${step.cached_from}`]);
  }
  if (step.recovers) {
    rows.push(['recovers', step.recovers]);
  }
  if (step.recovered_by.length) {
    rows.push(['recovered by', step.recovered_by.join(', ')]);
  }
  rows.push(['env', environmentField(step)]);
  if (step.llm_call) {
    rows.push(['LLM', llmCallField(step.llm_call)]);
  }
  for (const approval of step.approvals) {
    rows.push([
      'approval',
      `${approval.decision} by ${approval.decided_by ?? '?'}${approval.reason ? `: ${approval.reason}` : ''}`
    ]);
  }
  rows.push(['history', step.events.map(e => e.status).join(' → ')]);
  if (step.source_text) {
    rows.push(['source', h('code', {}, step.source_text)]);
  }
  return rows;
}

export function detailFields(
  step: IStepDetail,
  links: IFieldLinks
): HTMLElement {
  return h(
    'table',
    { className: 'jp-rlam-fields' },
    h(
      'tbody',
      {},
      ...fields(step, links).map(([label, value]) =>
        h('tr', {}, h('th', {}, label), h('td', {}, value))
      )
    )
  );
}
