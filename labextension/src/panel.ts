/**
 * The R-LAM sidebar: runs as a fork tree, the selected run's steps as a virtualised
 * list, one step's detail, and the actions (replay, fork, diff, export) that are sent
 * to the notebook's kernel as `%rlam` commands.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import {
  SidePanel,
  ToolbarButton,
  refreshIcon
} from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { AccordionPanel, Panel, Widget } from '@lumino/widgets';

import {
  IActionSchema,
  IOutputArtifact,
  IRun,
  IStepDetail,
  IStepSummary,
  IStepsPage,
  TraceApi
} from './api';
import {
  diffCommand,
  exportCommand,
  forkCommand,
  replayCommand,
  runInKernel
} from './commands';
import {
  formatDuration,
  formatTime,
  formatValue,
  h,
  shortHash,
  statusIcon
} from './dom';
import { rlamIcon } from './icons';
import { SchemaForm } from './schemaForm';

const ROW_HEIGHT = 24;
const PAGE_SIZE = 100;
const OVERSCAN = 8;
const POLL_MS = 1500;

/** What the sidebar needs from the notebook it follows. */
export interface INotebookLink {
  /** Path of the notebook relative to the server root. */
  path: string;
  sessionContext: ISessionContext;
  /** Save the notebook (export bundles what is on disk). */
  save(): Promise<void>;
}

export const STEP_FILTERS: [string, string][] = [
  ['', 'All steps'],
  ['failed,rejected', 'Failed or rejected'],
  ['failed', 'Failed'],
  ['interrupted', 'Interrupted (kernel died)'],
  ['rejected', 'Rejected'],
  ['succeeded', 'Succeeded'],
  ['cached', 'Cached']
];

/** A section of the accordion whose content is re-rendered from data. */
class Section extends Widget {
  constructor(label: string, className: string) {
    super();
    this.addClass('jp-rlam-section');
    this.addClass(className);
    this.title.label = label;
  }
}

export class TracePanel extends SidePanel {
  readonly api = new TraceApi();
  private notebook: INotebookLink | null = null;
  private runs: IRun[] = [];
  private stamp = '';
  private store = '';
  private runFilter = '';
  private selectedRun: string | null = null;
  private collapsed = new Set<string>();
  private statusFilter = '';
  private actionFilter = '';
  private pages = new Map<number, IStepSummary[]>();
  private pending = new Set<number>();
  private pageInfo: IStepsPage | null = null;
  private pageKey = '';
  private selectedSeq: number | null = null;
  private detail: IStepDetail | null = null;
  private mode: 'none' | 'fork' | 'diff' = 'none';
  private form: SchemaForm | null = null;
  private schemas: Record<string, IActionSchema> | null = null;
  private busy = false;
  private error = '';
  private readonly header_ = h('div', { className: 'jp-rlam-header' });
  private readonly runsSection = new Section('Runs', 'jp-rlam-runs');
  private readonly stepsSection = new Section('Steps', 'jp-rlam-steps');
  private readonly stepSection = new Panel();
  private readonly detailWidget = new Section('Step', 'jp-rlam-detail-host');
  private readonly activity: OutputArea;
  private readonly activityTitle = h('div', {
    className: 'jp-rlam-activity-title'
  });
  private readonly viewport = h('div', {
    className: 'jp-rlam-steps-viewport'
  });
  private readonly spacer = h('div', { className: 'jp-rlam-steps-spacer' });
  private readonly stepsHeader = h('div', {
    className: 'jp-rlam-steps-header'
  });
  private readonly poll: Poll;
  private scrollFrame = 0;

  constructor(rendermime: IRenderMimeRegistry) {
    super();
    this.id = 'rlam-sidebar';
    this.addClass('jp-rlam-panel');
    this.title.icon = rlamIcon;
    this.title.caption = 'R-LAM trace browser';
    this.header.addWidget(new Widget({ node: this.header_ }));
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'Reload the trace',
        onClick: () => void this.refresh(true)
      })
    );

    this.viewport.appendChild(this.spacer);
    this.viewport.addEventListener('scroll', () => {
      cancelAnimationFrame(this.scrollFrame);
      this.scrollFrame = requestAnimationFrame(() => this.renderRows());
    });
    this.stepsSection.node.append(this.stepsHeader, this.viewport);

    this.activity = new OutputArea({
      model: new OutputAreaModel({ trusted: true }),
      rendermime
    });
    this.activity.addClass('jp-rlam-activity-output');
    const activityHost = new Widget({
      node: h('div', { className: 'jp-rlam-activity' }, this.activityTitle)
    });
    this.stepSection.addClass('jp-rlam-step-section');
    this.stepSection.title.label = 'Step';
    this.stepSection.addWidget(this.detailWidget);
    this.stepSection.addWidget(activityHost);
    this.stepSection.addWidget(this.activity);

    this.addWidget(this.runsSection);
    this.addWidget(this.stepsSection);
    this.addWidget(this.stepSection);
    (this.content as AccordionPanel).setRelativeSizes([1, 2, 2]);

    this.poll = new Poll({
      auto: true,
      factory: () => this.tick(),
      frequency: { interval: POLL_MS, backoff: true, max: 30 * 1000 },
      name: 'rlam:trace',
      standby: () => !this.isVisible || 'when-hidden'
    });
    this.render();
  }

  dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  get selectedRunId(): string | null {
    return this.selectedRun;
  }

  get selectedStep(): IStepDetail | null {
    return this.detail;
  }

  /** Follow a notebook: its store is the `.rlam` folder beside it. */
  setNotebook(link: INotebookLink | null): void {
    const path = link?.path ?? '';
    const changed = path !== this.api.path || !this.notebook;
    this.notebook = link;
    this.api.path = path;
    if (changed) {
      this.runs = [];
      this.selectedRun = null;
      this.selectedSeq = null;
      this.detail = null;
      this.stamp = '';
      this.resetPages();
      this.render();
      void this.refresh(true);
    }
  }

  private async tick(): Promise<void> {
    try {
      const reply = await this.api.stamp();
      if (reply.stamp !== this.stamp) {
        await this.refresh();
      }
    } catch (error) {
      this.showError(error);
      throw error;
    }
  }

  /** Reload runs, the visible steps and the open step from the server. */
  async refresh(force = false): Promise<void> {
    try {
      const reply = await this.api.runs();
      const changed = force || reply.stamp !== this.stamp;
      this.stamp = reply.stamp;
      this.store = reply.store;
      this.runs = reply.runs;
      this.error = '';
      if (
        !this.selectedRun ||
        !this.runs.some(r => r.run_id === this.selectedRun)
      ) {
        const latest = this.runs[this.runs.length - 1];
        this.selectedRun = latest ? latest.run_id : null;
        this.selectedSeq = null;
        this.detail = null;
      }
      if (changed) {
        this.resetPages();
      }
      this.render();
      if (changed && this.selectedRun && this.selectedSeq !== null) {
        await this.loadDetail(this.selectedRun, this.selectedSeq);
      }
    } catch (error) {
      this.showError(error);
    }
  }

  private showError(error: unknown): void {
    this.error = error instanceof Error ? error.message : String(error);
    this.renderHeader();
  }

  private resetPages(): void {
    this.pages.clear();
    this.pending.clear();
    this.pageInfo = null;
    this.pageKey = `${this.selectedRun}|${this.statusFilter}|${this.actionFilter}|${this.stamp}`;
  }

  // ------------------------------------------------------------------ render

  private render(): void {
    this.renderHeader();
    this.renderRuns();
    this.renderStepsHeader();
    this.renderRows();
    this.renderDetail();
  }

  private renderHeader(): void {
    const name = this.api.path
      ? this.api.path.split('/').pop()
      : 'no notebook open';
    this.header_.replaceChildren(
      h('span', { className: 'jp-rlam-title' }, 'R-LAM'),
      h(
        'span',
        { className: 'jp-rlam-notebook', title: this.store || '' },
        name
      ),
      ...(this.error
        ? [h('div', { className: 'jp-rlam-error-banner' }, this.error)]
        : [])
    );
  }

  private renderRuns(): void {
    const node = this.runsSection.node;
    const filter = h(
      'select',
      {
        className: 'jp-mod-styled jp-rlam-run-filter',
        title: 'Which runs to show',
        onchange: (event: Event) => {
          this.runFilter = (event.target as HTMLSelectElement).value;
          this.renderRuns();
        }
      },
      h('option', { value: '' }, 'All runs'),
      h('option', { value: 'problems' }, 'Runs with failures')
    );
    filter.value = this.runFilter;
    if (!this.runs.length) {
      node.replaceChildren(
        h(
          'p',
          { className: 'jp-rlam-empty' },
          this.api.path
            ? 'No runs yet. Run a %%rlam cell in this notebook; its steps appear here.'
            : 'Open a notebook to see its R-LAM runs.'
        )
      );
      return;
    }
    const children = new Map<string, IRun[]>();
    const ids = new Set(this.runs.map(r => r.run_id));
    const roots: IRun[] = [];
    for (const run of this.runs) {
      if (run.parent_run_id && ids.has(run.parent_run_id)) {
        const list = children.get(run.parent_run_id) ?? [];
        list.push(run);
        children.set(run.parent_run_id, list);
      } else {
        roots.push(run);
      }
    }
    const hasProblem = (run: IRun): boolean =>
      run.failed + run.rejected + (run.interrupted ?? 0) > 0 ||
      (children.get(run.run_id) ?? []).some(hasProblem);
    const tree = (list: IRun[], depth: number): HTMLElement =>
      h(
        'ul',
        {
          className: depth ? 'jp-rlam-run-children' : 'jp-rlam-run-tree',
          role: depth ? 'group' : 'tree'
        },
        ...list
          .filter(r => this.runFilter !== 'problems' || hasProblem(r))
          .map(run => {
            const kids = children.get(run.run_id) ?? [];
            const open = !this.collapsed.has(run.run_id);
            return h(
              'li',
              { className: 'jp-rlam-run-item', role: 'treeitem' },
              this.runRow(run, kids.length > 0, open),
              kids.length && open ? tree(kids, depth + 1) : null
            );
          })
      );
    node.replaceChildren(
      h('div', { className: 'jp-rlam-section-bar' }, filter),
      tree(roots, 0)
    );
  }

  private runRow(run: IRun, hasKids: boolean, open: boolean): HTMLElement {
    const interrupted = run.interrupted ?? 0;
    const problems = run.failed + run.rejected + interrupted;
    const status =
      run.status === 'open' || run.status === 'interrupted'
        ? run.status
        : problems
          ? 'failed'
          : run.status;
    const parts: string[] = [];
    if (run.fork_seq) {
      parts.push(`fork at ${run.fork_seq}`);
      parts.push(`${run.steps} new, ${run.shared} shared`);
    } else {
      parts.push(`${run.steps} step${run.steps === 1 ? '' : 's'}`);
    }
    const caret = h(
      'span',
      {
        className: 'jp-rlam-caret',
        onclick: (event: Event) => {
          event.stopPropagation();
          if (this.collapsed.has(run.run_id)) {
            this.collapsed.delete(run.run_id);
          } else {
            this.collapsed.add(run.run_id);
          }
          this.renderRuns();
        }
      },
      hasKids ? (open ? '▾' : '▸') : ''
    );
    return h(
      'div',
      {
        className:
          'jp-rlam-run-row' +
          (run.run_id === this.selectedRun ? ' jp-mod-selected' : '') +
          (problems ? ' jp-rlam-has-problems' : ''),
        'data-run-id': run.run_id,
        'data-parent-run-id': run.parent_run_id ?? '',
        'data-status': run.status,
        title: `${run.run_id}\nstarted ${formatTime(run.created_at)}\nstatus ${run.status}`,
        onclick: () => this.selectRun(run.run_id)
      },
      caret,
      statusIcon(status),
      h('span', { className: 'jp-rlam-run-name' }, run.name),
      h('span', { className: 'jp-rlam-muted' }, `seed ${run.seed}`),
      h('span', { className: 'jp-rlam-run-steps' }, parts.join(' · ')),
      problems
        ? h(
            'span',
            { className: 'jp-rlam-run-problems' },
            [
              run.failed ? `${run.failed} failed` : '',
              run.rejected ? `${run.rejected} rejected` : '',
              interrupted ? `${interrupted} interrupted` : ''
            ]
              .filter(Boolean)
              .join(', ')
          )
        : null,
      h(
        'span',
        { className: 'jp-rlam-muted jp-rlam-run-time' },
        formatTime(run.created_at)
      )
    );
  }

  selectRun(runId: string): void {
    if (runId === this.selectedRun) {
      return;
    }
    this.selectedRun = runId;
    this.selectedSeq = null;
    this.detail = null;
    this.mode = 'none';
    this.resetPages();
    this.viewport.scrollTop = 0;
    this.render();
  }

  private renderStepsHeader(): void {
    const run = this.runs.find(r => r.run_id === this.selectedRun);
    if (!run) {
      this.stepsHeader.replaceChildren();
      return;
    }
    const status = h(
      'select',
      {
        className: 'jp-mod-styled jp-rlam-status-filter',
        title: 'Show only steps with this status',
        onchange: (event: Event) => {
          this.statusFilter = (event.target as HTMLSelectElement).value;
          this.resetPages();
          this.viewport.scrollTop = 0;
          this.renderStepsHeader();
          this.renderRows();
        }
      },
      ...STEP_FILTERS.map(([value, label]) => h('option', { value }, label))
    );
    status.value = this.statusFilter;
    const actions = h(
      'select',
      {
        className: 'jp-mod-styled jp-rlam-action-filter',
        title: 'Show only steps of this action',
        onchange: (event: Event) => {
          this.actionFilter = (event.target as HTMLSelectElement).value;
          this.resetPages();
          this.viewport.scrollTop = 0;
          this.renderStepsHeader();
          this.renderRows();
        }
      },
      h('option', { value: '' }, 'All actions'),
      ...(this.pageInfo?.actions ?? []).map(a => h('option', { value: a }, a))
    );
    actions.value = this.actionFilter;
    const counts = this.pageInfo?.counts ?? {};
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const summary = [`${total} steps`];
    for (const key of ['failed', 'rejected', 'interrupted', 'cached']) {
      if (counts[key]) {
        summary.push(`${counts[key]} ${key}`);
      }
    }
    this.stepsHeader.replaceChildren(
      h(
        'div',
        { className: 'jp-rlam-steps-title' },
        h('span', { className: 'jp-rlam-run-name' }, run.name),
        h('span', { className: 'jp-rlam-step-counts' }, summary.join(' · '))
      ),
      h('div', { className: 'jp-rlam-section-bar' }, status, actions)
    );
  }

  /** Draw only the rows in view; fetch the pages they live on. */
  private renderRows(): void {
    if (!this.selectedRun) {
      this.spacer.replaceChildren();
      this.spacer.style.height = '0px';
      return;
    }
    const total = this.pageInfo?.total ?? 0;
    this.spacer.style.height = `${total * ROW_HEIGHT}px`;
    const height = this.viewport.clientHeight || 30 * ROW_HEIGHT;
    const first = Math.max(
      0,
      Math.floor(this.viewport.scrollTop / ROW_HEIGHT) - OVERSCAN
    );
    const last = Math.min(
      this.pageInfo ? total : PAGE_SIZE,
      Math.ceil((this.viewport.scrollTop + height) / ROW_HEIGHT) + OVERSCAN
    );
    const rows: HTMLElement[] = [];
    for (let index = first; index < last; index++) {
      const page = Math.floor(index / PAGE_SIZE);
      const step = this.pages.get(page)?.[index % PAGE_SIZE];
      if (!step) {
        void this.loadPage(page);
        if (this.pageInfo) {
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
        continue;
      }
      rows.push(this.stepRow(step, index));
    }
    if (this.pageInfo && total === 0) {
      rows.push(
        h(
          'p',
          { className: 'jp-rlam-empty' },
          this.statusFilter || this.actionFilter
            ? 'No step matches the filter.'
            : 'This run has no steps yet.'
        )
      );
    }
    this.spacer.replaceChildren(...rows);
  }

  private stepRow(step: IStepSummary, index: number): HTMLElement {
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
          (step.seq === this.selectedSeq ? ' jp-mod-selected' : '') +
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
        onclick: () => this.selectStep(step.seq)
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

  private async loadPage(page: number): Promise<void> {
    const runId = this.selectedRun;
    if (!runId || this.pending.has(page)) {
      return;
    }
    const key = this.pageKey;
    this.pending.add(page);
    try {
      const reply = await this.api.steps(
        runId,
        page * PAGE_SIZE,
        PAGE_SIZE,
        this.statusFilter,
        this.actionFilter
      );
      if (key !== this.pageKey) {
        return;
      }
      const first = this.pageInfo === null;
      this.pages.set(page, reply.steps);
      this.pageInfo = reply;
      if (first) {
        this.renderStepsHeader();
      }
      this.renderRows();
      if (reply.stamp !== this.stamp) {
        // The store moved on between the runs and this page: poll now (single flight)
        // so the tree and counts catch up with the list.
        void this.poll.refresh();
      }
    } catch (error) {
      this.showError(error);
    } finally {
      if (key === this.pageKey) {
        this.pending.delete(page);
      }
    }
  }

  selectStep(seq: number): void {
    if (!this.selectedRun) {
      return;
    }
    this.selectedSeq = seq;
    this.mode = 'none';
    this.renderRows();
    void this.loadDetail(this.selectedRun, seq);
  }

  /** Scroll the list to a step (by its position among the filtered steps). */
  private revealSeq(seq: number): void {
    for (const [page, steps] of this.pages) {
      const index = steps.findIndex(s => s.seq === seq);
      if (index >= 0) {
        const top = (page * PAGE_SIZE + index) * ROW_HEIGHT;
        if (
          top < this.viewport.scrollTop ||
          top >
            this.viewport.scrollTop + this.viewport.clientHeight - ROW_HEIGHT
        ) {
          this.viewport.scrollTop = Math.max(0, top - 2 * ROW_HEIGHT);
        }
        return;
      }
    }
  }

  private async loadDetail(runId: string, seq: number): Promise<void> {
    try {
      const detail = await this.api.step(runId, seq);
      if (runId === this.selectedRun && seq === this.selectedSeq) {
        this.detail = detail;
        this.renderDetail();
      }
    } catch (error) {
      this.showError(error);
    }
  }

  // ------------------------------------------------------------------ detail

  /** The rendering of a stored figure output, loaded after the detail is shown. */
  private figureImage(out: IOutputArtifact): HTMLImageElement | null {
    if (out.kind !== 'figure' || out.restorable === false) {
      return null;
    }
    const image = h('img', {
      className: 'jp-rlam-figure',
      alt: out.preview ?? `figure ${out.name}`
    });
    this.api
      .image(out.artifact_id)
      .then(blob => {
        const url = URL.createObjectURL(blob);
        image.addEventListener('load', () => URL.revokeObjectURL(url), {
          once: true
        });
        image.src = url;
      })
      .catch(error => {
        image.replaceWith(
          h(
            'span',
            { className: 'jp-rlam-muted' },
            `image unavailable: ${(error as Error).message}`
          )
        );
      });
    return image;
  }

  private renderDetail(): void {
    const node = this.detailWidget.node;
    const step = this.detail;
    if (!step || step.seq !== this.selectedSeq) {
      node.replaceChildren(
        h(
          'p',
          { className: 'jp-rlam-empty' },
          this.selectedRun ? 'Select a step to see its detail.' : ''
        ),
        this.mode === 'diff' && this.selectedRun ? this.diffForm() : ''
      );
      return;
    }
    const rows: [string, Node | string | null][] = [];
    const params = Object.entries(step.params ?? {});
    rows.push([
      'params',
      params.length
        ? h(
            'span',
            {},
            ...params.map(([k, v]) =>
              h(
                'code',
                { className: 'jp-rlam-param' },
                `${k}=${formatValue(v)}`
              )
            )
          )
        : h('span', { className: 'jp-rlam-muted' }, 'none')
    ]);
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
      rows.push([
        'inputs',
        h(
          'span',
          {},
          ...step.input_links.map(link =>
            h(
              'span',
              { className: 'jp-rlam-input' },
              h('code', {}, link.name),
              ' ← ',
              link.producer
                ? h(
                    'a',
                    {
                      className: 'jp-rlam-link',
                      href: '#',
                      'data-seq': link.producer.seq,
                      title: `${link.producer.step_id} · ${shortHash(link.artifact_id, 16)}`,
                      onclick: (event: Event) => {
                        event.preventDefault();
                        this.selectStep(link.producer!.seq);
                        this.revealSeq(link.producer!.seq);
                      }
                    },
                    `step ${link.producer.seq} (${link.producer.action})`
                  )
                : h(
                    'span',
                    { className: 'jp-rlam-muted' },
                    shortHash(link.artifact_id)
                  )
            )
          )
        )
      ]);
    }
    if (step.output_artifacts.length) {
      rows.push([
        'outputs',
        h(
          'div',
          {},
          ...step.output_artifacts.map(out =>
            h(
              'details',
              { className: 'jp-rlam-output', open: out.kind === 'figure' },
              h(
                'summary',
                {},
                h('code', {}, out.name),
                ' ',
                h(
                  'span',
                  { className: 'jp-rlam-hash' },
                  shortHash(out.artifact_id, 12)
                ),
                ' ',
                h(
                  'span',
                  { className: 'jp-rlam-muted' },
                  [
                    out.python_type?.split('.').pop(),
                    out.size_bytes !== undefined ? `${out.size_bytes} B` : ''
                  ]
                    .filter(Boolean)
                    .join(' · ')
                )
              ),
              this.figureImage(out),
              h(
                'pre',
                { className: 'jp-rlam-preview' },
                out.preview ?? '(no preview)'
              )
            )
          )
        )
      ]);
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
    const env = step.environment;
    rows.push([
      'env',
      h(
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
      )
    ]);
    if (step.llm_call) {
      const call = step.llm_call;
      rows.push([
        'LLM',
        h(
          'details',
          { className: 'jp-rlam-llm' },
          h(
            'summary',
            {},
            `${call.model ?? '?'} · ${call.input_tokens ?? '?'}→${call.output_tokens ?? '?'} tokens · ${formatDuration(call.latency_ms as number)}`
          ),
          h(
            'pre',
            { className: 'jp-rlam-preview' },
            JSON.stringify(call.response, null, 1)
          )
        )
      ]);
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

    const error =
      step.error_type || step.error_message
        ? h(
            'div',
            { className: 'jp-rlam-error' },
            h('strong', {}, `${step.error_type ?? 'Error'}: `),
            step.error_message ?? '',
            step.traceback
              ? h('pre', { className: 'jp-rlam-traceback' }, step.traceback)
              : null
          )
        : null;

    node.replaceChildren(
      h(
        'div',
        {
          className: `jp-rlam-detail jp-rlam-row-${step.status}`,
          'data-step-id': step.step_id,
          'data-seq': step.seq
        },
        h(
          'div',
          { className: 'jp-rlam-detail-title' },
          statusIcon(step.status),
          h('span', {}, `Step ${step.seq} · `),
          h('code', {}, step.action),
          h('span', { className: 'jp-rlam-muted' }, ` ${step.status}`),
          step.inherited
            ? h('span', { className: 'jp-rlam-muted' }, ' (shared with parent)')
            : null
        ),
        error,
        h(
          'table',
          { className: 'jp-rlam-fields' },
          h(
            'tbody',
            {},
            ...rows.map(([label, value]) =>
              h('tr', {}, h('th', {}, label), h('td', {}, value))
            )
          )
        ),
        this.actionButtons(step),
        this.mode === 'fork' ? this.forkForm(step) : null,
        this.mode === 'diff' ? this.diffForm() : null
      )
    );
  }

  private button(
    label: string,
    action: string,
    onClick: () => void,
    accept = false,
    title = ''
  ): HTMLButtonElement {
    return h(
      'button',
      {
        className: `jp-Button jp-mod-styled ${accept ? 'jp-mod-accept' : 'jp-mod-reject'} jp-rlam-button`,
        type: 'button',
        'data-rlam-action': action,
        title,
        disabled: this.busy,
        onclick: onClick
      },
      label
    );
  }

  private actionButtons(step: IStepDetail): HTMLElement {
    return h(
      'div',
      { className: 'jp-rlam-actions' },
      this.button(
        'Replay to here',
        'replay',
        () => void this.replaySelected(),
        false,
        'Restore this run’s outputs up to this step in the kernel, without re-running'
      ),
      this.button(
        'Fork from here…',
        'fork',
        () => void this.openForkForm(),
        false,
        `Start a new run from step ${step.seq} with changed parameters`
      ),
      this.button(
        'Diff with…',
        'diff',
        () => this.openDiff(),
        false,
        'Compare this run with another, step by step'
      ),
      this.button(
        'Export bundle',
        'export',
        () => void this.exportBundle(),
        false,
        'Write the notebook and its provenance into one zip'
      )
    );
  }

  /** Show the fork form for the selected step. */
  async openForkForm(): Promise<void> {
    const step = this.detail;
    if (!step) {
      return;
    }
    if (this.schemas === null) {
      try {
        this.schemas = (await this.api.actions()).actions;
      } catch {
        this.schemas = {};
      }
    }
    const known = this.schemas[step.action];
    const recorded = step.params ?? {};
    // Use the server's schema only when it matches what was recorded (same names).
    const schema =
      known &&
      Object.keys(recorded).every(
        k => k in (known.params_schema.properties ?? {})
      )
        ? known.params_schema
        : null;
    this.form = new SchemaForm(schema, recorded);
    this.mode = 'fork';
    this.renderDetail();
    const first = this.form.node.querySelector(
      'input, select'
    ) as HTMLElement | null;
    first?.focus();
  }

  private forkForm(step: IStepDetail): HTMLElement {
    const form = this.form!;
    const name = h('input', {
      className: 'jp-mod-styled',
      type: 'text',
      name: '__name',
      placeholder: 'automatic'
    });
    const message = h('div', { className: 'jp-rlam-form-message' });
    const submit = (): void => {
      const changes = form.changes();
      if (changes === null) {
        message.textContent = 'Fix the highlighted values first.';
        return;
      }
      message.textContent = '';
      void this.fork(step, changes, name.value.trim() || undefined);
    };
    form.node.onsubmit = (event: Event) => {
      event.preventDefault();
      submit();
    };
    return h(
      'div',
      { className: 'jp-rlam-fork' },
      h(
        'div',
        { className: 'jp-rlam-subtitle' },
        `Fork run at step ${step.seq} (${step.action})`
      ),
      form.node,
      h(
        'label',
        { className: 'jp-rlam-form-row' },
        h('span', { className: 'jp-rlam-form-label' }, 'run name'),
        name
      ),
      message,
      h(
        'div',
        { className: 'jp-rlam-actions' },
        this.button('Fork', 'fork-submit', submit, true),
        this.button('Cancel', 'cancel', () => {
          this.mode = 'none';
          this.renderDetail();
        })
      )
    );
  }

  private async fork(
    step: IStepDetail,
    changes: Record<string, string>,
    name?: string
  ): Promise<void> {
    const runId = this.selectedRun;
    if (!runId) {
      return;
    }
    const before = new Set(this.runs.map(r => r.run_id));
    const status = await this.send(forkCommand(runId, step.seq, changes, name));
    if (status !== 'ok') {
      return;
    }
    this.mode = 'none';
    await this.refresh(true);
    const child = this.runs.find(
      r => !before.has(r.run_id) && r.parent_run_id === runId
    );
    if (child) {
      this.selectRun(child.run_id);
    }
  }

  /** Replay the selected run up to the selected step, in the kernel. */
  async replaySelected(): Promise<void> {
    if (this.selectedRun && this.detail) {
      await this.send(replayCommand(this.selectedRun, this.detail.seq));
      await this.refresh();
    }
  }

  openDiff(): void {
    if (!this.selectedRun) {
      return;
    }
    this.mode = 'diff';
    this.renderDetail();
  }

  private diffForm(): HTMLElement {
    const others = this.runs.filter(r => r.run_id !== this.selectedRun);
    const select = h(
      'select',
      { className: 'jp-mod-styled', name: 'diff-with' },
      ...others.map(r =>
        h('option', { value: r.run_id }, `${r.name} (${r.run_id.slice(-6)})`)
      )
    );
    const parent = this.runs.find(
      r => r.run_id === this.selectedRun
    )?.parent_run_id;
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
          ? this.button(
              'Diff',
              'diff-submit',
              () => {
                this.mode = 'none';
                this.renderDetail();
                void this.send(diffCommand(this.selectedRun!, select.value));
              },
              true
            )
          : null,
        this.button('Cancel', 'cancel', () => {
          this.mode = 'none';
          this.renderDetail();
        })
      )
    );
  }

  /** Save the notebook, then `%rlam export` it with its trace into one zip. */
  async exportBundle(): Promise<void> {
    if (!this.notebook) {
      return;
    }
    await this.notebook.save();
    const name = this.notebook.path.split('/').pop() ?? this.notebook.path;
    await this.send(exportCommand(name));
  }

  /** Send one `%rlam` line to the notebook's kernel; its outputs show below the detail. */
  private async send(code: string): Promise<string> {
    const link = this.notebook;
    this.activityTitle.replaceChildren(
      h('code', { className: 'jp-rlam-command' }, code)
    );
    this.activity.model.clear();
    if (!link) {
      this.showError(
        new Error('Open the notebook this trace belongs to first.')
      );
      return 'error';
    }
    this.busy = true;
    this.renderDetail();
    this.activityTitle.dataset.state = 'running';
    let status = 'error';
    try {
      status = await runInKernel(code, this.activity, link.sessionContext);
    } catch (error) {
      this.showError(error);
    } finally {
      this.busy = false;
      this.activityTitle.dataset.state = status;
      this.renderDetail();
    }
    return status;
  }
}

export { rlamIcon };
