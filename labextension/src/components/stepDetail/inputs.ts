/** The step's inputs, each linked to the step of the run that produced it. */
import { IStepDetail } from '../../api';
import { h, shortHash } from '../../dom';

/** @param openStep selects a producing step (and scrolls the list to it) */
export function inputLinks(
  step: IStepDetail,
  openStep: (seq: number) => void
): HTMLElement {
  return h(
    'span',
    {},
    ...step.input_links.map(link =>
      h(
        'span',
        { className: 'jp-rlam-input' },
        h('code', {}, link.name),
        ' ← ',
        link.producer
          ? h(
              'a',
              {
                className: 'jp-rlam-link',
                href: '#',
                'data-seq': link.producer.seq,
                title: `${link.producer.step_id} · ${shortHash(link.artifact_id, 16)}`,
                onclick: (event: Event) => {
                  event.preventDefault();
                  openStep(link.producer!.seq);
                }
              },
              `step ${link.producer.seq} (${link.producer.action})`
            )
          : h(
              'span',
              { className: 'jp-rlam-muted' },
              shortHash(link.artifact_id)
            )
      )
    )
  );
}
