/** A section of the sidebar's accordion: a titled widget its view redraws from the model. */
import { Widget } from '@lumino/widgets';

export class Section extends Widget {
  constructor(label: string, className: string) {
    super();
    this.addClass('jp-rlam-section');
    this.addClass(className);
    this.title.label = label;
  }
}
