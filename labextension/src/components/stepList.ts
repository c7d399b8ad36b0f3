/**
 * The selected run's steps as a virtualised list: only the rows in view are drawn
 * (a run can have thousands), and the model fetches the pages they live on.
 */
import { IStepSummary } from '../api';
import { formatDuration, h, shortHash, statusIcon } from '../dom';
import { TraceModel } from '../model';
import { PAGE_SIZE } from '../stepPages';
import { StepsChange } from '../tokens';
import { Section } from './section';
import { renderStepsHeader } from './stepsHeader';

const ROW_HEIGHT = 24;
const OVERSCAN = 8;

/** One step's row at position `index` of the list. */
function stepRow(
  step: IStepSummary,
  index: number,
  selected: boolean,
  onSelect: () => void
): HTMLElement {
  const hashes = Object.values(step.outputs ?? {});
  let detail = hashes.map(x => shortHash(x)).join(' ');
  if (step.error_type) {
    detail = step.error_type;
  }
  const flags: string[] = [];
  if (step.status === 'cached' || step.cached_from) {
    flags.push('cached');
  }
  if (step.recovers) {
    flags.push(`↺ ${step.recovers.split('-').pop()?.replace(/^0+/, '')}`);
  }
  return h(
    'div',
    {
      className:
        `jp-rlam-step-row jp-rlam-row-${step.status}` +
        (selected ? ' jp-mod-selected' : '') +
        (step.inherited ? ' jp-rlam-inherited' : ''),
      style: `top:${index * ROW_HEIGHT}px`,
      'data-seq': step.seq,
      'data-status': step.status,
      'data-action': step.action,
      title:
        `${step.step_id}` +
        (step.inherited ? ' (shared with the parent run)' : '') +
        (step.error_message
          ? `\n${step.error_type}: ${step.error_message}`
          : ''),
      onclick: onSelect
    },
    h('span', { className: 'jp-rlam-seq' }, step.seq),
    statusIcon(step.status),
    h('span', { className: 'jp-rlam-action' }, step.action),
    h('span', { className: 'jp-rlam-flags' }, flags.join(' ')),
    h(
      'span',
      { className: 'jp-rlam-duration' },
      formatDuration(step.duration_ms)
    ),
    h(
      'span',
      {
        className: 'jp-rlam-hash',
        title: step.seed === null ? '' : `seed ${step.seed}`
      },
      detail
    )
  );
}

export class StepList extends Section {
  private readonly stepsHeader = h('div', {
    className: 'jp-rlam-steps-header'
  });
  private readonly viewport = h('div', {
    className: 'jp-rlam-steps-viewport'
  });
  private readonly spacer = h('div', { className: 'jp-rlam-steps-spacer' });
  private scrollFrame = 0;

  constructor(private readonly model: TraceModel) {
    super('Steps', 'jp-rlam-steps');
    this.viewport.appendChild(this.spacer);
    this.viewport.addEventListener('scroll', () => {
      cancelAnimationFrame(this.scrollFrame);
      this.scrollFrame = requestAnimationFrame(() => this.renderRows());
    });
    this.node.append(this.stepsHeader, this.viewport);
    model.runsChanged.connect((_, change) => {
      if (change.picked) {
        this.viewport.scrollTop = 0;
      }
      this.renderHeader();
      this.renderRows();
    }, this);
    model.stepsChanged.connect(this.onStepsChanged, this);
    this.renderHeader();
    this.renderRows();
  }

  /** Scroll the list to a step (by its position among the filtered steps). */
  reveal(seq: number): void {
    const index = this.model.indexOf(seq);
    if (index < 0) {
      return;
    }
    const top = index * ROW_HEIGHT;
    const { scrollTop, clientHeight } = this.viewport;
    if (top < scrollTop || top > scrollTop + clientHeight - ROW_HEIGHT) {
      this.viewport.scrollTop = Math.max(0, top - 2 * ROW_HEIGHT);
    }
  }

  private onStepsChanged(_: TraceModel, change: StepsChange): void {
    if (change === 'filter') {
      this.viewport.scrollTop = 0;
    }
    if (change === 'filter' || change === 'first-page') {
      this.renderHeader();
    }
    this.renderRows();
  }

  private renderHeader(): void {
    renderStepsHeader(this.stepsHeader, this.model);
  }

  /** Draw only the rows in view; fetch the pages they live on. */
  private renderRows(): void {
    const model = this.model;
    if (!model.selectedRunId) {
      this.spacer.replaceChildren();
      this.spacer.style.height = '0px';
      return;
    }
    const info = model.stepsInfo;
    const total = info?.total ?? 0;
    this.spacer.style.height = `${total * ROW_HEIGHT}px`;
    const { scrollTop } = this.viewport;
    const height = this.viewport.clientHeight || 30 * ROW_HEIGHT;
    const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
    // Before the first page says how many steps there are, draw up to one page.
    const last = Math.min(
      info ? total : PAGE_SIZE,
      Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN
    );
    const rows: HTMLElement[] = [];
    for (let index = first; index < last; index++) {
      const step = model.stepAt(index);
      if (step) {
        const selected = step.seq === model.selectedSeq;
        rows.push(
          stepRow(step, index, selected, () => model.selectStep(step.seq))
        );
        continue;
      }
      void model.loadPageOf(index);
      if (info) {
        rows.push(
          h(
            'div',
            {
              className: 'jp-rlam-step-row jp-rlam-placeholder',
              style: `top:${index * ROW_HEIGHT}px`
            },
            '…'
          )
        );
      }
    }
    if (info && total === 0) {
      rows.push(
        h(
          'p',
          { className: 'jp-rlam-empty' },
          model.statusFilter || model.actionFilter
            ? 'No step matches the filter.'
            : 'This run has no steps yet.'
        )
      );
    }
    this.spacer.replaceChildren(...rows);
  }
}
