/** The sidebar's own icon: a trace whose branch forks (themed through `jp-icon3`). */
import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <circle cx="6" cy="4" r="2.5"/>
    <circle cx="6" cy="20" r="2.5"/>
    <circle cx="18" cy="12" r="2.5"/>
    <rect x="5" y="6" width="2" height="12"/>
    <path d="M6 9.5c0 2.5 2 3.5 4.5 3.5H15.6v-2H10.5C8.9 11 8 10.4 8 9.5z"/>
  </g>
</svg>`;

export const rlamIcon = new LabIcon({
  name: 'rlam-jupyter:trace',
  svgstr: svg
});
