/**
 * Tells a person busy in a notebook that an MCP client waits for their decision: a
 * JupyterLab notification (a toast, kept in the notification centre) with an "Open
 * rlam sidebar" action when a proposal arrives while the panel is hidden, and the
 * number waiting on the panel's tab in the sidebar.
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IPendingApproval } from './api';
import { ApprovalsModel } from './approvalsModel';

const CAPTION = 'R-LAM trace browser';

/** The toast's text (JupyterLab cuts it at 140 characters). */
export function noticeText(pending: readonly IPendingApproval[]): string {
  if (pending.length === 1) {
    const [p] = pending;
    return `${p.client} waits for your approval: ${p.action} (step ${p.seq} of ${p.run}, ${p.notebook})`;
  }
  const notebooks = [...new Set(pending.map(p => p.notebook))].join(', ');
  return `${pending.length} MCP proposals wait for your approval (${notebooks})`;
}

export class ApprovalNotice {
  private notificationId: string | null = null;

  /**
   * @param panel the rlam panel (its tab shows the count)
   * @param show brings the panel into view
   */
  constructor(
    private readonly model: ApprovalsModel,
    private readonly panel: Widget,
    private readonly show: () => void
  ) {
    model.changed.connect(this.update, this);
    model.arrived.connect(this.announce, this);
  }

  /** The tab's count; the toast follows the count, and goes once the panel is seen. */
  private update(): void {
    const count = this.model.pending.length;
    const { title } = this.panel;
    // The shell keeps the tab's `data-id` in the same dataset: change only ours.
    const dataset: Record<string, string> = { ...title.dataset };
    if (count) {
      dataset['rlam-pending'] = String(count);
    } else {
      delete dataset['rlam-pending'];
    }
    title.dataset = dataset;
    title.caption = count
      ? `${CAPTION}: ${count} waiting for approval`
      : CAPTION;
    if (this.notificationId === null) {
      return;
    }
    if (!count || this.panel.isVisible) {
      Notification.dismiss(this.notificationId);
      this.notificationId = null;
    } else {
      Notification.update({
        id: this.notificationId,
        message: noticeText(this.model.pending)
      });
    }
  }

  private announce(): void {
    if (this.panel.isVisible) {
      return; // the person sees the section at the top of the panel
    }
    const message = noticeText(this.model.pending);
    const options = {
      autoClose: false as const,
      actions: [
        {
          label: 'Open rlam sidebar',
          caption: 'Approve, reject or edit the proposal',
          displayType: 'accent' as const,
          callback: () => this.show()
        }
      ]
    };
    if (this.notificationId !== null) {
      // A fresh toast for each arrival: the person may have closed the last one.
      Notification.dismiss(this.notificationId);
    }
    this.notificationId = Notification.warning(message, options);
  }
}
