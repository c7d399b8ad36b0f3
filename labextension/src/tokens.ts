/**
 * The types the sidebar's model, views and plugin share: the notebook it follows,
 * how a line reaches the kernel, and what each change signal carries.
 */
import { ISessionContext } from '@jupyterlab/apputils';

import { IJSONSchema } from './api';

/** What the sidebar needs from the notebook it follows. */
export interface INotebookLink {
  /** Path of the notebook relative to the server root. */
  path: string;
  sessionContext: ISessionContext;
  /** Save the notebook (export bundles what is on disk). */
  save(): Promise<void>;
}

/** Runs one line in a kernel (its outputs land in the activity's outputs); resolves to the reply status. */
export type KernelRunner = (
  code: string,
  sessionContext: ISessionContext
) => Promise<string>;

/** How the model reaches what lies outside it. */
export interface ITraceModelOptions {
  /** Runs a `%rlam` line in the kernel, its outputs into `activity.outputs`. */
  runKernel: KernelRunner;
  /** Whether the sidebar is shown (polling stands by while it is not). */
  isVisible: () => boolean;
}

/** The runs, the notebook or the selected run changed: every view redraws. */
export interface IRunsChange {
  /** `selectRun` picked another run (its step list starts from the top). */
  readonly picked: boolean;
}

/**
 * Why the step list changed: a filter, a page arrived ('first-page' also brings the
 * counts and actions), or the selected step.
 */
export type StepsChange = 'filter' | 'first-page' | 'page' | 'selection';

/** Which form is open under the step detail. */
export type FormMode = 'none' | 'fork' | 'diff';

/** What the fork form is generated from; a new one each time the form opens. */
export interface IForkRequest {
  /** The action's schema from the server, or null to infer fields from `recorded`. */
  readonly schema: IJSONSchema | null;
  /** The step's recorded parameters (the form's initial values). */
  readonly recorded: Record<string, unknown>;
}
