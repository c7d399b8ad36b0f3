/**
 * The store's runs as a tree: each fork under the run it forked from, a filter for
 * the runs with problems, and carets that fold a run's forks away.
 */
import { IRun } from '../api';
import { formatTime, h, statusIcon } from '../dom';
import { TraceModel } from '../model';
import { Section } from './section';

/** Failed, rejected and interrupted steps: what makes a run's row stand out. */
function problemCount(run: IRun): number {
  return run.failed + run.rejected + (run.interrupted ?? 0);
}

/** The runs whose parent is not in the store, and each run's forks. */
function forkTree(runs: readonly IRun[]): {
  roots: IRun[];
  children: Map<string, IRun[]>;
} {
  const children = new Map<string, IRun[]>();
  const ids = new Set(runs.map(r => r.run_id));
  const roots: IRun[] = [];
  for (const run of runs) {
    if (run.parent_run_id && ids.has(run.parent_run_id)) {
      const list = children.get(run.parent_run_id) ?? [];
      list.push(run);
      children.set(run.parent_run_id, list);
    } else {
      roots.push(run);
    }
  }
  return { roots, children };
}

export class RunsTree extends Section {
  constructor(private readonly model: TraceModel) {
    super('Runs', 'jp-rlam-runs');
    model.runsChanged.connect(this.render, this);
    model.treeChanged.connect(this.render, this);
    this.render();
  }

  render(): void {
    const model = this.model;
    const filter = h(
      'select',
      {
        className: 'jp-mod-styled jp-rlam-run-filter',
        title: 'Which runs to show',
        onchange: (event: Event) =>
          model.setRunFilter((event.target as HTMLSelectElement).value)
      },
      h('option', { value: '' }, 'All runs'),
      h('option', { value: 'problems' }, 'Runs with failures')
    );
    filter.value = model.runFilter;
    if (!model.runs.length) {
      this.node.replaceChildren(
        h(
          'p',
          { className: 'jp-rlam-empty' },
          model.path
            ? 'No runs yet. Run a %%rlam cell in this notebook; its steps appear here.'
            : 'Open a notebook to see its R-LAM runs.'
        )
      );
      return;
    }
    const { roots, children } = forkTree(model.runs);
    const hasProblem = (run: IRun): boolean =>
      problemCount(run) > 0 ||
      (children.get(run.run_id) ?? []).some(hasProblem);
    const tree = (list: IRun[], depth: number): HTMLElement =>
      h(
        'ul',
        {
          className: depth ? 'jp-rlam-run-children' : 'jp-rlam-run-tree',
          role: depth ? 'group' : 'tree'
        },
        ...list
          .filter(r => model.runFilter !== 'problems' || hasProblem(r))
          .map(run => {
            const kids = children.get(run.run_id) ?? [];
            const open = !model.isCollapsed(run.run_id);
            return h(
              'li',
              { className: 'jp-rlam-run-item', role: 'treeitem' },
              this.runRow(run, kids.length > 0, open),
              kids.length && open ? tree(kids, depth + 1) : null
            );
          })
      );
    this.node.replaceChildren(
      h('div', { className: 'jp-rlam-section-bar' }, filter),
      tree(roots, 0)
    );
  }

  private runRow(run: IRun, hasKids: boolean, open: boolean): HTMLElement {
    const interrupted = run.interrupted ?? 0;
    const problems = problemCount(run);
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
          this.model.toggleCollapsed(run.run_id);
        }
      },
      hasKids ? (open ? '▾' : '▸') : ''
    );
    return h(
      'div',
      {
        className:
          'jp-rlam-run-row' +
          (run.run_id === this.model.selectedRunId ? ' jp-mod-selected' : '') +
          (problems ? ' jp-rlam-has-problems' : ''),
        'data-run-id': run.run_id,
        'data-parent-run-id': run.parent_run_id ?? '',
        'data-status': run.status,
        title: `${run.run_id}\nstarted ${formatTime(run.created_at)}\nstatus ${run.status}`,
        onclick: () => this.model.selectRun(run.run_id)
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
}
