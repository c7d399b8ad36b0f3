/**
 * "Waiting for approval", at the top of the panel: the MCP proposals that wait for a
 * person, each as an `ApprovalCard`, and the notes on those that left the board while
 * the person dealt with them. Hidden while nothing waits.
 */
import { Widget } from '@lumino/widgets';

import { ApprovalsModel } from '../approvalsModel';
import { h } from '../dom';
import { ApprovalCard } from './approvalCard';

export class ApprovalsSection extends Widget {
  private readonly cards = new Map<string, ApprovalCard>();
  private readonly title_ = h('div', { className: 'jp-rlam-approvals-title' });
  private readonly list = h('div', { className: 'jp-rlam-approvals-list' });
  /** Counts the cards' time left down (a few cards at most; none most of the time). */
  private readonly timer = window.setInterval(() => {
    for (const card of this.cards.values()) {
      card.tick();
    }
  }, 1000);

  constructor(private readonly model: ApprovalsModel) {
    super();
    this.addClass('jp-rlam-approvals');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Waiting for approval');
    this.node.append(this.title_, this.list);
    model.changed.connect(this.render, this);
    this.render();
  }

  render(): void {
    const { pending, gone } = this.model;
    const shown = [
      ...pending.map(item => ({ item, gone: false })),
      ...gone.map(item => ({ item, gone: true }))
    ];
    const ids = new Set(shown.map(s => s.item.id));
    for (const [id, card] of this.cards) {
      if (!ids.has(id)) {
        card.node.remove();
        this.cards.delete(id);
      }
    }
    // Place each card in order without moving the ones already in place (a moved
    // node loses the focus of the field being typed in).
    let previous: Element | null = null;
    for (const { item, gone: isGone } of shown) {
      let card = this.cards.get(item.id);
      if (!card) {
        card = new ApprovalCard(item, this.model);
        this.cards.set(item.id, card);
      }
      card.render(isGone);
      const expected: Element | null = previous
        ? previous.nextElementSibling
        : this.list.firstElementChild;
      if (expected !== card.node) {
        this.list.insertBefore(card.node, expected);
      }
      previous = card.node;
    }
    this.title_.replaceChildren('Waiting for approval');
    if (pending.length) {
      this.title_.append(
        h('span', { className: 'jp-rlam-approvals-count' }, pending.length)
      );
    }
    this.setHidden(shown.length === 0);
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }
}
