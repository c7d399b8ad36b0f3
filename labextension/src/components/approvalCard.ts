/**
 * One MCP proposal waiting for approval: who asks, in which notebook and run, the
 * proposal as a line of code, the action's signature, the time left, and Approve /
 * Reject (with a reason) / Edit (the parameters in a form generated from the
 * action's schema, sent as `edited_params` with only the changed values).
 *
 * The reason field and the edit form live as long as the card, so a redraw keeps
 * what the person typed; the card redraws only when its own state changed.
 */
import { IPendingApproval } from '../api';
import { ApprovalsModel } from '../approvalsModel';
import { h } from '../dom';
import { SchemaForm } from '../schemaForm';
import { actionButton } from './button';

/** `4:05 left`, `35 s left`. */
export function formatLeft(seconds: number): string {
  const whole = Math.floor(seconds);
  if (whole < 60) {
    return `${whole} s left`;
  }
  const rest = String(whole % 60).padStart(2, '0');
  return `${Math.floor(whole / 60)}:${rest} left`;
}

export class ApprovalCard {
  readonly node: HTMLElement;
  private readonly time = h('span', { className: 'jp-rlam-approval-time' });
  private readonly reason = h('input', {
    className: 'jp-mod-styled',
    type: 'text',
    name: 'reason',
    placeholder: 'why not (the agent reads it)'
  });
  private form: SchemaForm | null = null;
  private drawn = '';

  constructor(
    readonly item: IPendingApproval,
    private readonly model: ApprovalsModel
  ) {
    this.node = h('div', {
      className: 'jp-rlam-approval',
      'data-approval-id': item.id,
      'data-action': item.action
    });
    this.reason.onkeydown = (event: KeyboardEvent) => {
      if (event.key === 'Enter') {
        this.reject();
      }
    };
  }

  /** Redraw if the model's state for this proposal changed since the last draw. */
  render(gone: boolean): void {
    const { model, item } = this;
    const state = [
      gone,
      model.formOf(item.id),
      model.isSending(item.id),
      model.errorOf(item.id)
    ].join('|');
    if (state === this.drawn) {
      return;
    }
    this.drawn = state;
    this.node.dataset.state = gone ? 'gone' : 'waiting';
    const error = model.errorOf(item.id);
    const parts = [
      h(
        'div',
        { className: 'jp-rlam-approval-head' },
        h('span', { className: 'jp-rlam-approval-action' }, item.action),
        h('span', { className: 'jp-rlam-muted' }, `step ${item.seq}`),
        gone ? null : this.time
      ),
      h(
        'div',
        { className: 'jp-rlam-approval-who jp-rlam-muted' },
        `${item.client} · ${item.notebook} · run ${item.run}`
      ),
      h('code', { className: 'jp-rlam-approval-text' }, item.text),
      h('div', { className: 'jp-rlam-approval-signature' }, item.signature),
      error ? h('div', { className: 'jp-rlam-approval-error' }, error) : null,
      gone ? this.dismissButton() : this.controls()
    ];
    this.node.replaceChildren(
      ...parts.filter((part): part is HTMLElement => part !== null)
    );
    this.tick();
    if (model.formOf(item.id) === 'reject') {
      this.reason.focus();
    }
  }

  /** Update the time left (every second). */
  tick(): void {
    const left = this.model.secondsLeft(this.item);
    this.time.textContent = formatLeft(left);
    this.time.classList.toggle('jp-rlam-approval-late', left < 30);
  }

  private controls(): HTMLElement {
    const { model, item } = this;
    const busy = model.isSending(item.id);
    const form = model.formOf(item.id);
    const buttons = h('div', { className: 'jp-rlam-actions' });
    if (form === 'reject') {
      return h(
        'div',
        { className: 'jp-rlam-approval-form' },
        h(
          'label',
          { className: 'jp-rlam-form-row' },
          h('span', { className: 'jp-rlam-form-label' }, 'reason'),
          this.reason
        ),
        this.withButtons(buttons, [
          actionButton('Reject', 'reject-submit', () => this.reject(), {
            busy,
            accept: true
          }),
          this.cancelButton(busy)
        ])
      );
    }
    if (form === 'edit') {
      return this.editForm(buttons, busy);
    }
    return this.withButtons(buttons, [
      actionButton('Approve', 'approve', () => this.approve(null), {
        busy,
        accept: true,
        title: 'Run the step as proposed'
      }),
      actionButton('Reject…', 'reject', () => this.open('reject'), {
        busy,
        title: 'Refuse the step; the agent gets your reason'
      }),
      actionButton('Edit…', 'edit', () => this.open('edit'), {
        busy,
        title: 'Change parameters, then approve'
      })
    ]);
  }

  private editForm(buttons: HTMLElement, busy: boolean): HTMLElement {
    this.form ??= new SchemaForm(this.item.params_schema, this.item.params);
    const form = this.form;
    const message = h('div', { className: 'jp-rlam-form-message' });
    const submit = (): void => {
      const changed = form.changedValues();
      if (changed === null) {
        message.textContent = 'Fix the highlighted values first.';
      } else if (!Object.keys(changed).length) {
        message.textContent = 'No value changed: change one, or use Approve.';
      } else {
        this.approve(changed);
      }
    };
    form.node.onsubmit = (event: Event) => {
      event.preventDefault();
      submit();
    };
    return h(
      'div',
      { className: 'jp-rlam-approval-form' },
      form.node,
      message,
      this.withButtons(buttons, [
        actionButton('Approve with edits', 'approve-edited', submit, {
          busy,
          accept: true
        }),
        this.cancelButton(busy)
      ])
    );
  }

  private withButtons(
    bar: HTMLElement,
    buttons: HTMLButtonElement[]
  ): HTMLElement {
    bar.replaceChildren(...buttons);
    return bar;
  }

  private cancelButton(busy: boolean): HTMLButtonElement {
    return actionButton('Cancel', 'cancel', () => this.open('none'), { busy });
  }

  private dismissButton(): HTMLElement {
    return h(
      'div',
      { className: 'jp-rlam-actions' },
      actionButton(
        'Dismiss',
        'dismiss',
        () => this.model.dismiss(this.item.id),
        { busy: false }
      )
    );
  }

  private open(form: 'none' | 'reject' | 'edit'): void {
    if (form === 'edit') {
      this.form = null; // a fresh form, prefilled with the proposal's values
    }
    this.model.openForm(this.item.id, form);
  }

  private approve(edits: Record<string, unknown> | null): void {
    void this.model.decide(this.item, {
      approved: true,
      reason: edits ? 'edited' : '',
      edited_params: edits
    });
  }

  private reject(): void {
    void this.model.decide(this.item, {
      approved: false,
      reason: this.reason.value.trim(),
      edited_params: null
    });
  }
}
