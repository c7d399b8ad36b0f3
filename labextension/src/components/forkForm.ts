/**
 * The fork form under the step detail: the step's parameters in a form generated
 * from the action's schema, a name for the new run, and Fork / Cancel.
 *
 * The generated form (and what the user typed into it) lives as long as the fork
 * request it was made for, so redrawing the detail keeps it.
 */
import { IStepDetail } from '../api';
import { h } from '../dom';
import { TraceModel } from '../model';
import { SchemaForm } from '../schemaForm';
import { IForkRequest } from '../tokens';
import { actionButton } from './button';

export class ForkForm {
  private request: IForkRequest | null = null;
  private form: SchemaForm | null = null;
  private focusPending = false;

  constructor(private readonly model: TraceModel) {}

  /** Make a new form if the fork form was opened again since the last draw. */
  sync(): void {
    const request = this.model.actions.forkRequest;
    if (request !== this.request) {
      this.request = request;
      this.form = request
        ? new SchemaForm(request.schema, request.recorded)
        : null;
      this.focusPending = this.form !== null;
    }
  }

  /** After the draw that showed a new form: focus its first field. */
  focusIfNew(): void {
    if (this.focusPending) {
      this.focusPending = false;
      const first = this.form!.node.querySelector(
        'input, select'
      ) as HTMLElement | null;
      first?.focus();
    }
  }

  render(step: IStepDetail): HTMLElement {
    const form = this.form!;
    const busy = this.model.activity.busy;
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
      void this.model.actions.fork(
        step,
        changes,
        name.value.trim() || undefined
      );
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
        actionButton('Fork', 'fork-submit', submit, { busy, accept: true }),
        actionButton('Cancel', 'cancel', () => this.model.actions.close(), {
          busy
        })
      )
    );
  }
}
