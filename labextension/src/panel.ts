/**
 * The R-LAM sidebar: what MCP clients wait for a person to approve, runs as a fork tree, the selected run's steps as a virtualised
 * list, one step's detail, and the actions (replay, fork, diff, export) that are sent
 * to the notebook's kernel as `%rlam` commands.
 *
 * This widget only wires the parts together: `TraceModel` holds the state and talks
 * to the server and the kernel; the views in `components/` draw it and call the
 * model on user input.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import {
  SidePanel,
  ToolbarButton,
  refreshIcon
} from '@jupyterlab/ui-components';
import { AccordionPanel, Panel, PanelLayout } from '@lumino/widgets';

import { runInKernel } from './commands';
import { ApprovalsSection } from './components/approvals';
import { PanelHeader } from './components/header';
import { KernelActivity } from './components/kernelActivity';
import { RunsTree } from './components/runsTree';
import { StepDetail } from './components/stepDetail/stepDetail';
import { StepList } from './components/stepList';
import { rlamIcon } from './icons';
import { TraceModel } from './model';

export class TracePanel extends SidePanel {
  readonly model: TraceModel;
  private readonly activity: KernelActivity;

  constructor(rendermime: IRenderMimeRegistry) {
    super();
    this.id = 'rlam-sidebar';
    this.addClass('jp-rlam-panel');
    this.title.icon = rlamIcon;
    this.title.caption = 'R-LAM trace browser';
    const model = new TraceModel({
      runKernel: (code, sessionContext) =>
        runInKernel(code, this.activity.output, sessionContext),
      isVisible: () => this.isVisible
    });
    this.model = model;
    this.header.addWidget(new PanelHeader(model));
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'Reload the trace',
        onClick: () => void model.refresh(true)
      })
    );

    const steps = new StepList(model);
    this.activity = new KernelActivity(model.activity, rendermime);
    const stepSection = new Panel();
    stepSection.addClass('jp-rlam-step-section');
    stepSection.title.label = 'Step';
    stepSection.addWidget(new StepDetail(model, seq => steps.reveal(seq)));
    stepSection.addWidget(this.activity);
    stepSection.addWidget(this.activity.output);

    // Above the sections, outside the accordion: it shows only while something
    // waits, and then it comes first (the layout: header, toolbar, accordion).
    const layout = this.layout as PanelLayout;
    layout.insertWidget(
      layout.widgets.indexOf(this.content),
      new ApprovalsSection(model.approvals)
    );
    this.addWidget(new RunsTree(model));
    this.addWidget(steps);
    this.addWidget(stepSection);
    (this.content as AccordionPanel).setRelativeSizes([1, 2, 2]);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.dispose();
    super.dispose();
  }
}
