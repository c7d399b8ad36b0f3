/** The LLM call that proposed the step: model, tokens, latency, and the raw response. */
import { formatDuration, h } from '../../dom';

export function llmCallField(call: Record<string, unknown>): HTMLElement {
  return h(
    'details',
    { className: 'jp-rlam-llm' },
    h(
      'summary',
      {},
      `${call.model ?? '?'} · ${call.input_tokens ?? '?'}→${call.output_tokens ?? '?'} tokens · ${formatDuration(call.latency_ms as number)}`
    ),
    h(
      'pre',
      { className: 'jp-rlam-preview' },
      JSON.stringify(call.response, null, 1)
    )
  );
}
