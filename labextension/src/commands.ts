/**
 * The `%rlam ...` lines the sidebar sends to the notebook's kernel.
 *
 * Sending them through the kernel (not a side channel) means each action is itself
 * recorded, in the kernel's history and, for replay/fork, in the trace.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { OutputArea } from '@jupyterlab/outputarea';
import { KernelMessage } from '@jupyterlab/services';

/** Quote one argument for the magic's shlex split (single quotes, POSIX style). */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_.,:=@%+\-/]+$/.test(word)) {
    return word;
  }
  return "'" + word.replace(/'/g, "'\"'\"'") + "'";
}

export function replayCommand(runId: string, upto: number): string {
  return `%rlam replay ${shellQuote(runId)} --upto ${upto}`;
}

/** `overrides` maps parameter names to Python literals (see `SchemaForm.changes`). */
export function forkCommand(
  runId: string,
  at: number,
  overrides: Record<string, string>,
  name?: string
): string {
  const sets = Object.entries(overrides).map(
    ([key, literal]) => ` --set ${shellQuote(`${key}=${literal}`)}`
  );
  const named = name ? ` --name ${shellQuote(name)}` : '';
  return `%rlam fork ${shellQuote(runId)} --at ${at}${sets.join('')}${named}`;
}

export function diffCommand(runA: string, runB: string): string {
  return `%rlam diff ${shellQuote(runA)} ${shellQuote(runB)}`;
}

export function exportCommand(notebook: string, runIds: string[] = []): string {
  const runs = runIds.length
    ? ' --runs ' + runIds.map(shellQuote).join(' ')
    : '';
  return `%rlam export ${shellQuote(notebook)}${runs}`;
}

const LOAD_EXTENSION =
  "get_ipython().extension_manager.load_extension('rlam_jupyter')";

/**
 * Run a `%rlam` line in the kernel and render its outputs into `output`.
 *
 * The extension is loaded first with a silent request (a fresh kernel may not have
 * run `%load_ext` yet), so only the command itself enters the kernel's history.
 * Resolves to the reply status: 'ok', 'error' or 'abort'.
 */
export async function runInKernel(
  code: string,
  output: OutputArea,
  sessionContext: ISessionContext
): Promise<string> {
  await sessionContext.ready;
  const kernel = sessionContext.session?.kernel;
  if (!kernel) {
    throw new Error('the notebook has no running kernel: start one first');
  }
  await kernel.requestExecute({ code: LOAD_EXTENSION, silent: true }).done;
  const reply: KernelMessage.IExecuteReplyMsg | undefined =
    await OutputArea.execute(code, output, sessionContext, {
      rlam: { origin: 'sidebar' }
    });
  return reply?.content.status ?? 'abort';
}
