/**
 * Tiny DOM builders for the panel's views (no framework: the views are small and
 * re-render from data; user text is always set as text, never as HTML).
 */

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<
  string,
  string | number | boolean | EventListener | undefined
>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) {
      continue;
    }
    if (typeof value === 'function') {
      node.addEventListener(key.replace(/^on/, ''), value);
    } else if (key === 'className') {
      node.className = String(value);
    } else if (key.startsWith('data-') || key === 'title' || key === 'type') {
      node.setAttribute(key, String(value));
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.appendChild(
      typeof child === 'object' ? child : document.createTextNode(String(child))
    );
  }
  return node;
}

export const STATUS_ICONS: Record<string, string> = {
  succeeded: '✓',
  cached: '⚡',
  failed: '✗',
  rejected: '⊘',
  proposed: '…',
  accepted: '…',
  running: '▶',
  open: '●',
  interrupted: '↯'
};

export function statusIcon(status: string): HTMLElement {
  return h(
    'span',
    {
      className: `jp-rlam-status jp-rlam-status-${status}`,
      title: status
    },
    STATUS_ICONS[status] ?? '?'
  );
}

export function shortHash(hash: string | null | undefined, length = 8): string {
  if (!hash) {
    return '';
  }
  const bare = hash.includes(':') ? (hash.split(':').pop() ?? hash) : hash;
  return bare.slice(0, length);
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) {
    return '';
  }
  if (ms < 1) {
    return `${ms.toFixed(2)} ms`;
  }
  if (ms < 1000) {
    return `${ms.toFixed(0)} ms`;
  }
  return `${(ms / 1000).toFixed(1)} s`;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  return sameDay
    ? date.toLocaleTimeString()
    : date.toLocaleDateString() + ' ' + date.toLocaleTimeString();
}

/** A recorded parameter as the Python literal a user wrote (`None`, `True`, `'a'`). */
export { pythonLiteral as formatValue } from './schemaValues';
