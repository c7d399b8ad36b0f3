/**
 * The selected step's detail: title, error, fields, the action buttons, and the
 * fork or diff form when one is open. Redrawn whole from the model on each change.
 */
import { IStepDetail } from '../../api';
import { h } from '../../dom';
import { TraceModel } from '../../model';
import { diffForm } from '../diffForm';
import { ForkForm } from '../forkForm';
import { Section } from '../section';
import { actionButtons } from './actions';
import { stepError } from './error';
import { IFieldLinks, detailFields } from './fields';
import { detailTitle } from './title';

export class StepDetail extends Section {
  private readonly forkForm: ForkForm;
  private readonly links: IFieldLinks;

  /** @param reveal scrolls the step list to a step */
  constructor(
    private readonly model: TraceModel,
    reveal: (seq: number) => void
  ) {
    super('Step', 'jp-rlam-detail-host');
    this.forkForm = new ForkForm(model);
    this.links = {
      openStep: seq => {
        model.selectStep(seq);
        reveal(seq);
      },
      image: artifactId => model.image(artifactId)
    };
    model.runsChanged.connect(this.render, this);
    model.detailChanged.connect(this.render, this);
    model.actions.changed.connect(this.render, this);
    model.activity.busyChanged.connect(this.render, this);
    this.render();
  }

  render(): void {
    const model = this.model;
    const step = model.detail;
    this.forkForm.sync();
    if (!step || step.seq !== model.selectedSeq) {
      this.node.replaceChildren(
        h(
          'p',
          { className: 'jp-rlam-empty' },
          model.selectedRunId ? 'Select a step to see its detail.' : ''
        ),
        model.actions.mode === 'diff' && model.selectedRunId
          ? diffForm(model)
          : ''
      );
    } else {
      this.node.replaceChildren(this.detail(step));
    }
    this.forkForm.focusIfNew();
  }

  private detail(step: IStepDetail): HTMLElement {
    const mode = this.model.actions.mode;
    return h(
      'div',
      {
        className: `jp-rlam-detail jp-rlam-row-${step.status}`,
        'data-step-id': step.step_id,
        'data-seq': step.seq
      },
      detailTitle(step),
      stepError(step),
      detailFields(step, this.links),
      actionButtons(step, this.model),
      mode === 'fork' ? this.forkForm.render(step) : null,
      mode === 'diff' ? diffForm(this.model) : null
    );
  }
}
