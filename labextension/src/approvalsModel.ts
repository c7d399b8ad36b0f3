/**
 * The MCP proposals waiting for a person: the server's approval board, polled every
 * second (also while the panel is hidden, so the notification can say that an agent
 * waits), which form each one has open, the decision in flight, and what went wrong.
 *
 * A proposal the person acted on (a form open, a failed decision) that leaves the
 * board without the sidebar's decision stays listed with a note saying why, until
 * it is dismissed: the person learns that the agent got a refusal.
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  ApiError,
  IApprovalDecision,
  IApprovalsReply,
  IPendingApproval
} from './api';

const POLL_MS = 1000;

/** Which form a waiting proposal shows under its buttons. */
export type ApprovalForm = 'none' | 'reject' | 'edit';

/** What the model needs from the server (a `TraceApi`). */
export interface IApprovalsApi {
  approvals(): Promise<IApprovalsReply>;
  decide(approvalId: string, decision: IApprovalDecision): Promise<unknown>;
}

/** Why a decision did not land, in words a person can act on. */
export function decisionError(error: unknown): string {
  if (error instanceof ApiError && error.status === 404) {
    return (
      'Too late: this proposal no longer waits (it timed out, and the agent was ' +
      'told it was refused, or it was decided in another window).'
    );
  }
  if (error instanceof ApiError) {
    return `The server did not take the decision (${error.status}): ${error.message}`;
  }
  const message = error instanceof Error ? error.message : String(error);
  return `Could not reach the server: ${message}. Try again.`;
}

export class ApprovalsModel {
  private pending_: IPendingApproval[] = [];
  /** Proposals that left the board while the person dealt with them. */
  private gone_: IPendingApproval[] = [];
  /** Server clock minus the browser's, in seconds. */
  private clockOffset = 0;
  private readonly forms = new Map<string, ApprovalForm>();
  private readonly errors = new Map<string, string>();
  private readonly sending = new Set<string>();
  /** Decided here: the board may still list it for an instant after the POST. */
  private readonly decided = new Set<string>();
  private readonly poll: Poll;
  private readonly changed_ = new Signal<this, void>(this);
  private readonly arrived_ = new Signal<this, IPendingApproval[]>(this);
  /** The list, a form, a decision in flight or an error changed. */
  readonly changed: ISignal<this, void> = this.changed_;
  /** Proposals that were not on the board at the last poll. */
  readonly arrived: ISignal<this, IPendingApproval[]> = this.arrived_;

  constructor(private readonly api: IApprovalsApi) {
    this.poll = new Poll({
      auto: true,
      factory: () => this.refresh(),
      frequency: { interval: POLL_MS, backoff: true, max: 30 * 1000 },
      name: 'rlam:approvals',
      standby: 'when-hidden'
    });
  }

  /** What waits now, oldest first. */
  get pending(): readonly IPendingApproval[] {
    return this.pending_;
  }

  /** What left the board while the person dealt with it (see `errorOf`). */
  get gone(): readonly IPendingApproval[] {
    return this.gone_;
  }

  formOf(approvalId: string): ApprovalForm {
    return this.forms.get(approvalId) ?? 'none';
  }

  /** The last problem with this proposal's decision ('' when none). */
  errorOf(approvalId: string): string {
    return this.errors.get(approvalId) ?? '';
  }

  /** A decision on this proposal is on its way to the server. */
  isSending(approvalId: string): boolean {
    return this.sending.has(approvalId);
  }

  /** Seconds before the proposal is refused for want of a decision (≥ 0). */
  secondsLeft(item: IPendingApproval): number {
    const serverNow = Date.now() / 1000 + this.clockOffset;
    return Math.max(0, item.expires_at - serverNow);
  }

  dispose(): void {
    this.poll.dispose();
    Signal.clearData(this);
  }

  /** Read the board now (the poll does it every second). */
  async refresh(): Promise<void> {
    const reply = await this.api.approvals();
    this.clockOffset = reply.now - Date.now() / 1000;
    const waiting = reply.pending.filter(p => !this.decided.has(p.id));
    const known = new Set(this.pending_.map(p => p.id));
    const now = new Set(waiting.map(p => p.id));
    const arrived = waiting.filter(p => !known.has(p.id));
    const left = this.pending_.filter(p => !now.has(p.id));
    if (!arrived.length && !left.length) {
      return;
    }
    for (const item of left) {
      this.leftTheBoard(item);
    }
    this.pending_ = waiting.sort((a, b) => a.asked_at - b.asked_at);
    this.changed_.emit();
    if (arrived.length) {
      this.arrived_.emit(arrived);
    }
  }

  openForm(approvalId: string, form: ApprovalForm): void {
    this.forms.set(approvalId, form);
    this.errors.delete(approvalId);
    this.changed_.emit();
  }

  /** Send the decision; the proposal leaves the list once the server took it. */
  async decide(
    item: IPendingApproval,
    decision: IApprovalDecision
  ): Promise<void> {
    if (this.sending.has(item.id)) {
      return;
    }
    this.sending.add(item.id);
    this.errors.delete(item.id);
    this.changed_.emit();
    try {
      await this.api.decide(item.id, decision);
      this.decided.add(item.id);
      this.forget(item.id);
      this.pending_ = this.pending_.filter(p => p.id !== item.id);
    } catch (error) {
      this.errors.set(item.id, decisionError(error));
      if (error instanceof ApiError && error.status === 404) {
        this.pending_ = this.pending_.filter(p => p.id !== item.id);
        this.gone_ = [...this.gone_.filter(p => p.id !== item.id), item];
      }
    } finally {
      this.sending.delete(item.id);
      this.changed_.emit();
    }
  }

  /** Remove a note about a proposal that no longer waits. */
  dismiss(approvalId: string): void {
    this.gone_ = this.gone_.filter(p => p.id !== approvalId);
    this.forget(approvalId);
    this.changed_.emit();
  }

  /** Keep a note when the person was dealing with a proposal that left the board. */
  private leftTheBoard(item: IPendingApproval): void {
    if (this.sending.has(item.id)) {
      return; // our own decision: `decide` removes it
    }
    if (this.formOf(item.id) === 'none' && !this.errors.has(item.id)) {
      this.forget(item.id);
      return;
    }
    this.errors.set(
      item.id,
      this.secondsLeft(item) <= 1
        ? 'No decision in time: the agent was told its call was refused.'
        : 'Decided elsewhere (another window, or the REST API).'
    );
    this.forms.delete(item.id);
    this.gone_ = [...this.gone_, item];
  }

  private forget(approvalId: string): void {
    this.forms.delete(approvalId);
    this.errors.delete(approvalId);
  }
}
