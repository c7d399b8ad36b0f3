/**
 * A small form generated from an action's JSON Schema (as pydantic emits it),
 * prefilled with a step's recorded parameters and validated before anything is sent.
 *
 * When the server does not know the action (defined only in a kernel), the field
 * types are inferred from the recorded values instead.
 */
import { IJSONSchema } from './api';

type Kind = 'enum' | 'boolean' | 'integer' | 'number' | 'string' | 'json';

interface IField {
  name: string;
  kind: Kind;
  schema: IJSONSchema;
  nullable: boolean;
  required: boolean;
  initial: unknown;
  input: HTMLInputElement | HTMLSelectElement;
  error: HTMLElement;
}

/** Resolve `$ref`s and `anyOf: [X, null]` into one schema plus a nullable flag. */
function normalise(
  schema: IJSONSchema,
  defs: Record<string, IJSONSchema>
): { schema: IJSONSchema; nullable: boolean } {
  let current = schema;
  if (current.$ref) {
    const name = current.$ref.split('/').pop() ?? '';
    current = { ...(defs[name] ?? {}), ...current, $ref: undefined };
  }
  if (current.anyOf) {
    const nonNull = current.anyOf.filter(s => s.type !== 'null');
    const nullable = nonNull.length < current.anyOf.length;
    if (nonNull.length === 1) {
      const inner = normalise(nonNull[0], defs);
      return {
        schema: {
          ...inner.schema,
          title: current.title,
          default: current.default
        },
        nullable: nullable || inner.nullable
      };
    }
    return { schema: current, nullable };
  }
  if (Array.isArray(current.type)) {
    const types = current.type.filter(t => t !== 'null');
    return {
      schema: { ...current, type: types.length === 1 ? types[0] : undefined },
      nullable: types.length < current.type.length
    };
  }
  return { schema: current, nullable: current.type === 'null' };
}

function kindOf(schema: IJSONSchema, value: unknown): Kind {
  if (schema.enum) {
    return 'enum';
  }
  switch (schema.type) {
    case 'boolean':
      return 'boolean';
    case 'integer':
      return 'integer';
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    case undefined:
      break;
    default:
      return 'json';
  }
  if (schema.anyOf) {
    return 'json';
  }
  // No schema: infer from the recorded value.
  if (typeof value === 'boolean') {
    return 'boolean';
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? 'integer' : 'number';
  }
  if (typeof value === 'string') {
    return 'string';
  }
  return 'json';
}

function display(value: unknown, kind: Kind): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (kind === 'json') {
    return JSON.stringify(value);
  }
  return String(value);
}

/** A parameter value as a Python literal, for `%rlam fork --set name=LITERAL`. */
export function pythonLiteral(value: unknown): string {
  if (value === null || value === undefined) {
    return 'None';
  }
  if (value === true) {
    return 'True';
  }
  if (value === false) {
    return 'False';
  }
  if (typeof value === 'number') {
    return Number.isFinite(value) ? String(value) : `float("${value}")`;
  }
  if (typeof value === 'string') {
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return '[' + value.map(pythonLiteral).join(', ') + ']';
  }
  if (typeof value === 'object') {
    const items = Object.entries(value as Record<string, unknown>).map(
      ([k, v]) => `${JSON.stringify(k)}: ${pythonLiteral(v)}`
    );
    return '{' + items.join(', ') + '}';
  }
  return JSON.stringify(String(value));
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
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
  private check(field: IField): { value?: unknown; error?: string } {
    const result = this.parse(field);
    field.error.textContent = result.error ?? '';
    field.input.classList.toggle('jp-rlam-invalid', !!result.error);
    return result;
  }

  private parse(field: IField): { value?: unknown; error?: string } {
    const { kind, schema, input } = field;
    if (kind === 'boolean') {
      return { value: (input as HTMLInputElement).checked };
    }
    if (kind === 'enum') {
      return { value: JSON.parse(input.value) };
    }
    const raw = input.value.trim();
    if (raw === '' || (field.nullable && raw === 'None')) {
      if (field.nullable) {
        return { value: null };
      }
      if (kind === 'string' && raw === '' && !field.required) {
        return { value: '' };
      }
      return { error: 'a value is required' };
    }
    let value: unknown;
    if (kind === 'integer' || kind === 'number') {
      if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw)) {
        return { error: `not a ${kind === 'integer' ? 'whole ' : ''}number` };
      }
      const parsed = Number(raw);
      if (kind === 'integer' && !Number.isInteger(parsed)) {
        return { error: 'must be a whole number' };
      }
      if (schema.minimum !== undefined && parsed < schema.minimum) {
        return { error: `must be ≥ ${schema.minimum}` };
      }
      if (schema.maximum !== undefined && parsed > schema.maximum) {
        return { error: `must be ≤ ${schema.maximum}` };
      }
      if (
        schema.exclusiveMinimum !== undefined &&
        parsed <= schema.exclusiveMinimum
      ) {
        return { error: `must be > ${schema.exclusiveMinimum}` };
      }
      if (
        schema.exclusiveMaximum !== undefined &&
        parsed >= schema.exclusiveMaximum
      ) {
        return { error: `must be < ${schema.exclusiveMaximum}` };
      }
      value = parsed;
    } else if (kind === 'string') {
      if (schema.minLength !== undefined && raw.length < schema.minLength) {
        return { error: `at least ${schema.minLength} characters` };
      }
      if (schema.maxLength !== undefined && raw.length > schema.maxLength) {
        return { error: `at most ${schema.maxLength} characters` };
      }
      if (schema.pattern && !new RegExp(schema.pattern).test(raw)) {
        return { error: `must match ${schema.pattern}` };
      }
      value = input.value;
    } else {
      try {
        value = JSON.parse(raw);
      } catch {
        return { error: 'not valid JSON (e.g. ["a", "b"] or 3 or null)' };
      }
      if (schema.type === 'array' && !Array.isArray(value)) {
        return { error: 'must be a list, e.g. ["a", "b"]' };
      }
    }
    return { value };
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

  /**
   * The valid values that differ from the recorded ones, as Python literals (the
   * fork's `--set name=LITERAL`s); null if any field is invalid.
   */
  changes(): Record<string, string> | null {
    const values = this.validate();
    if (values === null) {
      return null;
    }
    const changed: Record<string, string> = {};
    for (const field of this.fields) {
      const value = values[field.name];
      if (sameValue(value, field.initial)) {
        continue;
      }
      // A float parameter stays a float when typed as "2" (strict validation).
      changed[field.name] =
        field.kind === 'number' &&
        typeof value === 'number' &&
        Number.isInteger(value)
          ? value.toFixed(1)
          : pythonLiteral(value);
    }
    return changed;
  }
}
