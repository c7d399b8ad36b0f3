/**
 * Parameter values against their JSON Schema: which kind of field a schema asks
 * for, what the user typed parsed and checked against it, and values written back
 * as the Python literals `%rlam fork --set` takes.
 */
import { IJSONSchema } from './api';

export type Kind =
  'enum' | 'boolean' | 'integer' | 'number' | 'string' | 'json';

/** What parsing a field's input depends on. */
export interface IFieldSpec {
  kind: Kind;
  schema: IJSONSchema;
  nullable: boolean;
  required: boolean;
}

/** A parsed value, or the problem to show beside the field. */
export interface IParsed {
  value?: unknown;
  error?: string;
}

/** Resolve `$ref`s and `anyOf: [X, null]` into one schema plus a nullable flag. */
export function normalise(
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

export function kindOf(schema: IJSONSchema, value: unknown): Kind {
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

export function display(value: unknown, kind: Kind): string {
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

export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Parse and check what was typed into a field's input. */
export function parseInput(
  field: IFieldSpec,
  input: HTMLInputElement | HTMLSelectElement
): IParsed {
  const { kind, schema } = field;
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
