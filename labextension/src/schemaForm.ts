/**
 * A small form generated from an action's JSON Schema (as pydantic emits it),
 * prefilled with a step's recorded parameters and validated before anything is sent.
 *
 * When the server does not know the action (defined only in a kernel), the field
 * types are inferred from the recorded values instead.
 */
import { IJSONSchema } from './api';
import {
  IFieldSpec,
  IParsed,
  Kind,
  display,
  kindOf,
  normalise,
  parseInput,
  pythonLiteral,
  sameValue
} from './schemaValues';

interface IField extends IFieldSpec {
  name: string;
  initial: unknown;
  input: HTMLInputElement | HTMLSelectElement;
  error: HTMLElement;
}

export class SchemaForm {
  readonly node: HTMLFormElement;
  private readonly fields: IField[] = [];

  /**
   * @param schema the action's parameter schema, or null to infer from `recorded`
   * @param recorded the step's recorded parameters (the form's initial values)
   */
  constructor(schema: IJSONSchema | null, recorded: Record<string, unknown>) {
    this.node = document.createElement('form');
    this.node.className = 'jp-rlam-form';
    this.node.noValidate = true;
    const defs = schema?.$defs ?? {};
    const properties = schema?.properties ?? {};
    const names = schema
      ? Object.keys(properties)
      : Object.keys(recorded).sort();
    const required = new Set(schema?.required ?? []);
    for (const name of names) {
      const { schema: fieldSchema, nullable } = normalise(
        properties[name] ?? {},
        defs
      );
      const initial =
        name in recorded ? recorded[name] : (fieldSchema.default ?? null);
      this.addField(
        name,
        kindOf(fieldSchema, initial),
        fieldSchema,
        nullable,
        required.has(name),
        initial
      );
    }
    if (!names.length) {
      const empty = document.createElement('p');
      empty.className = 'jp-rlam-muted';
      empty.textContent = 'This action has no parameters to change.';
      this.node.appendChild(empty);
    }
  }

  private addField(
    name: string,
    kind: Kind,
    schema: IJSONSchema,
    nullable: boolean,
    required: boolean,
    initial: unknown
  ): void {
    const row = document.createElement('label');
    row.className = 'jp-rlam-form-row';
    const label = document.createElement('span');
    label.className = 'jp-rlam-form-label';
    label.textContent = name;
    label.title = schema.description ?? schema.title ?? name;
    row.appendChild(label);
    let input: HTMLInputElement | HTMLSelectElement;
    if (kind === 'enum') {
      const select = document.createElement('select');
      select.className = 'jp-mod-styled';
      const options = [...(schema.enum ?? [])];
      if (nullable) {
        options.unshift(null);
      }
      for (const option of options) {
        const element = document.createElement('option');
        element.value = JSON.stringify(option);
        element.textContent = option === null ? '(none)' : String(option);
        select.appendChild(element);
      }
      select.value = JSON.stringify(initial ?? null);
      input = select;
    } else if (kind === 'boolean') {
      const checkbox = document.createElement('input');
      checkbox.type = 'checkbox';
      checkbox.checked = initial === true;
      input = checkbox;
    } else {
      const text = document.createElement('input');
      text.type = 'text';
      text.className = 'jp-mod-styled';
      text.value = display(initial, kind);
      text.placeholder = nullable ? 'None' : kind;
      text.spellcheck = false;
      input = text;
    }
    input.name = name;
    input.dataset.kind = kind;
    row.appendChild(input);
    const error = document.createElement('span');
    error.className = 'jp-rlam-form-error';
    row.appendChild(error);
    this.node.appendChild(row);
    const field: IField = {
      name,
      kind,
      schema,
      nullable,
      required,
      initial,
      input,
      error
    };
    input.addEventListener('input', () => this.check(field));
    input.addEventListener('change', () => this.check(field));
    this.fields.push(field);
  }

  /** Parse and check one field; shows the problem beside it. */
  private check(field: IField): IParsed {
    const result = parseInput(field, field.input);
    field.error.textContent = result.error ?? '';
    field.input.classList.toggle('jp-rlam-invalid', !!result.error);
    return result;
  }

  /** Every field's value, or null (with errors shown) if any is invalid. */
  validate(): Record<string, unknown> | null {
    const values: Record<string, unknown> = {};
    let ok = true;
    for (const field of this.fields) {
      const result = this.check(field);
      if (result.error) {
        ok = false;
      } else {
        values[field.name] = result.value;
      }
    }
    return ok ? values : null;
  }

  /** The valid values that differ from the recorded ones; null if any field is invalid. */
  changedValues(): Record<string, unknown> | null {
    const values = this.validate();
    if (values === null) {
      return null;
    }
    const changed: Record<string, unknown> = {};
    for (const field of this.fields) {
      if (!sameValue(values[field.name], field.initial)) {
        changed[field.name] = values[field.name];
      }
    }
    return changed;
  }

  /**
   * The valid values that differ from the recorded ones, as Python literals (the
   * fork's `--set name=LITERAL`s); null if any field is invalid.
   */
  changes(): Record<string, string> | null {
    const values = this.changedValues();
    if (values === null) {
      return null;
    }
    const kinds = new Map(this.fields.map(f => [f.name, f.kind]));
    const changed: Record<string, string> = {};
    for (const [name, value] of Object.entries(values)) {
      // A float parameter stays a float when typed as "2" (strict validation).
      changed[name] =
        kinds.get(name) === 'number' &&
        typeof value === 'number' &&
        Number.isInteger(value)
          ? value.toFixed(1)
          : pythonLiteral(value);
    }
    return changed;
  }
}
