/** The sidebar's action buttons: found by `data-rlam-action`, disabled while a line runs. */
import { h } from '../dom';

export interface IButtonOptions {
  /** A `%rlam` line is running: every action waits for it. */
  busy: boolean;
  /** The form's main action (accept style) rather than a secondary one. */
  accept?: boolean;
  title?: string;
}

export function actionButton(
  label: string,
  action: string,
  onClick: () => void,
  options: IButtonOptions
): HTMLButtonElement {
  return h(
    'button',
    {
      className: `jp-Button jp-mod-styled ${options.accept ? 'jp-mod-accept' : 'jp-mod-reject'} jp-rlam-button`,
      type: 'button',
      'data-rlam-action': action,
      title: options.title ?? '',
      disabled: options.busy,
      onclick: onClick
    },
    label
  );
}
