/**
 * JupyterLab plugin: the R-LAM trace browser in the right sidebar, following the
 * current notebook, with `rlam:*` commands in the command palette, and a
 * notification when an MCP client waits for approval.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { ApprovalNotice } from './approvalNotice';
import { rlamIcon } from './icons';
import { TracePanel } from './panel';

const CATEGORY = 'R-LAM';

export namespace CommandIDs {
  export const open = 'rlam:open';
  export const replay = 'rlam:replay';
  export const fork = 'rlam:fork';
  export const diff = 'rlam:diff';
  export const exportBundle = 'rlam:export';
}

function link(panel: NotebookPanel | null) {
  if (!panel) {
    return null;
  }
  return {
    path: panel.context.path,
    sessionContext: panel.sessionContext,
    save: () => panel.context.save()
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'rlam-jupyter:sidebar',
  description:
    'R-LAM trace browser: runs, steps and failures of the notebook; replay, fork, diff, export.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new TracePanel(rendermime);
    app.shell.add(panel, 'right', { rank: 600 });
    restorer?.add(panel, 'rlam-sidebar');
    new ApprovalNotice(panel.model.approvals, panel, () =>
      app.shell.activateById(panel.id)
    );

    const follow = (): void => {
      const current = tracker.currentWidget;
      panel.model.setNotebook(link(current));
    };
    tracker.currentChanged.connect(follow);
    tracker.widgetAdded.connect((_, nb) => {
      nb.context.pathChanged.connect(() => {
        if (tracker.currentWidget === nb) {
          follow();
        }
      });
    });
    void app.restored.then(follow);

    const { model } = panel;
    const hasStep = () => model.detail !== null;
    const { commands } = app;
    commands.addCommand(CommandIDs.open, {
      label: 'R-LAM: Open Trace Browser',
      caption: 'Show the runs and steps recorded for the current notebook',
      icon: rlamIcon,
      execute: () => {
        app.shell.activateById(panel.id);
        void model.refresh(true);
      }
    });
    commands.addCommand(CommandIDs.replay, {
      label: 'R-LAM: Replay to Selected Step',
      isEnabled: hasStep,
      execute: () => model.actions.replaySelected()
    });
    commands.addCommand(CommandIDs.fork, {
      label: 'R-LAM: Fork from Selected Step…',
      isEnabled: hasStep,
      execute: () => {
        app.shell.activateById(panel.id);
        return model.actions.openFork();
      }
    });
    commands.addCommand(CommandIDs.diff, {
      label: 'R-LAM: Diff Selected Run with…',
      isEnabled: () => model.selectedRunId !== null,
      execute: () => {
        app.shell.activateById(panel.id);
        model.actions.openDiff();
      }
    });
    commands.addCommand(CommandIDs.exportBundle, {
      label: 'R-LAM: Export Provenance Bundle',
      isEnabled: () => tracker.currentWidget !== null,
      execute: () => model.actions.exportBundle()
    });
    if (palette) {
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category: CATEGORY });
      }
    }
  }
};

export default plugin;
