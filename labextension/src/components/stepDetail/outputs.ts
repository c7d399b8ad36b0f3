/** The step's outputs: name, hash, type and size, a preview, and a figure's rendering. */
import { IOutputArtifact, IStepDetail } from '../../api';
import { h, shortHash } from '../../dom';

/** Fetches a figure artifact's PNG. */
export type ImageSource = (artifactId: string) => Promise<Blob>;

/** The rendering of a stored figure output, loaded after the detail is shown. */
function figureImage(
  out: IOutputArtifact,
  image: ImageSource
): HTMLImageElement | null {
  if (out.kind !== 'figure' || out.restorable === false) {
    return null;
  }
  const node = h('img', {
    className: 'jp-rlam-figure',
    alt: out.preview ?? `figure ${out.name}`
  });
  image(out.artifact_id)
    .then(blob => {
      const url = URL.createObjectURL(blob);
      node.addEventListener('load', () => URL.revokeObjectURL(url), {
        once: true
      });
      node.src = url;
    })
    .catch(error => {
      node.replaceWith(
        h(
          'span',
          { className: 'jp-rlam-muted' },
          `image unavailable: ${(error as Error).message}`
        )
      );
    });
  return node;
}

function outputArtifact(out: IOutputArtifact, image: ImageSource): HTMLElement {
  return h(
    'details',
    { className: 'jp-rlam-output', open: out.kind === 'figure' },
    h(
      'summary',
      {},
      h('code', {}, out.name),
      ' ',
      h('span', { className: 'jp-rlam-hash' }, shortHash(out.artifact_id, 12)),
      ' ',
      h(
        'span',
        { className: 'jp-rlam-muted' },
        [
          out.python_type?.split('.').pop(),
          out.size_bytes !== undefined ? `${out.size_bytes} B` : ''
        ]
          .filter(Boolean)
          .join(' · ')
      )
    ),
    figureImage(out, image),
    h('pre', { className: 'jp-rlam-preview' }, out.preview ?? '(no preview)')
  );
}

export function outputArtifacts(
  step: IStepDetail,
  image: ImageSource
): HTMLElement {
  return h(
    'div',
    {},
    ...step.output_artifacts.map(out => outputArtifact(out, image))
  );
}
