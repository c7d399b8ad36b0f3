/**
 * Typed client of the server extension's REST API (`/rlam/api/`).
 *
 * Every request carries the notebook's path (relative to the server root); the
 * server answers from the `.rlam` store beside that notebook. The only writes are
 * the decisions on MCP proposals waiting for approval (`approvals/<id>`).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IRun {
  run_id: string;
  name: string;
  seed: number;
  status: string;
  parent_run_id: string | null;
  fork_seq: number | null;
  notebook: string | null;
  created_at: string | null;
  ended_at: string | null;
  env_id: string | null;
  steps: number;
  failed: number;
  rejected: number;
  interrupted: number;
  cached: number;
  shared: number;
  last_seq: number | null;
}

export interface IRunsReply {
  store: string;
  stamp: string;
  runs: IRun[];
}

export interface IStepSummary {
  seq: number;
  step_id: string;
  run_id: string;
  action: string;
  status: string;
  duration_ms: number | null;
  seed: number | null;
  cached_from: string | null;
  outputs: Record<string, string>;
  error_type: string | null;
  error_message: string | null;
  recovers: string | null;
  determinism: string | null;
  started_at: string | null;
  inherited: boolean;
}

export interface IStepsPage {
  run_id: string;
  stamp: string;
  offset: number;
  limit: number;
  total: number;
  counts: Record<string, number>;
  actions: string[];
  steps: IStepSummary[];
}

export interface IInputLink {
  param: string;
  name: string;
  artifact_id: string;
  producer: {
    run_id: string;
    seq: number;
    step_id: string;
    action: string;
    output: string;
  } | null;
}

export interface IOutputArtifact {
  name: string;
  artifact_id: string;
  kind?: string;
  python_type?: string;
  size_bytes?: number;
  preview?: string;
  restorable?: boolean;
  note?: string | null;
}

export interface IStepDetail extends IStepSummary {
  params: Record<string, unknown>;
  inputs: Record<string, string>;
  input_names: Record<string, string>;
  targets: string[];
  traceback: string | null;
  cache_key: string | null;
  action_version: string | null;
  source_text: string | null;
  origin: string | null;
  proposed_by: string | null;
  env_id: string | null;
  input_links: IInputLink[];
  output_artifacts: IOutputArtifact[];
  events: { status: string; recorded_at: string | null; event_no: number }[];
  recovered_by: string[];
  approvals: {
    decision: string;
    reason: string | null;
    decided_by: string | null;
  }[];
  llm_call: Record<string, unknown> | null;
  environment: {
    env_id: string | null;
    same_as_run: boolean;
    fingerprint: Record<string, unknown> | null;
  };
}

export interface IActionSchema {
  description: string;
  determinism: string;
  inputs: string[];
  outputs: string[];
  params_schema: IJSONSchema;
}

/** The subset of JSON Schema that pydantic emits for action parameters. */
export interface IJSONSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  items?: IJSONSchema;
  anyOf?: IJSONSchema[];
  properties?: Record<string, IJSONSchema>;
  required?: string[];
  $ref?: string;
  $defs?: Record<string, IJSONSchema>;
}

export interface IStampReply {
  store: string;
  exists: boolean;
  stamp: string;
}

/** A proposal of an MCP client that waits for a person's decision. */
export interface IPendingApproval {
  id: string;
  /** The notebook whose kernel runs the call (relative to the server root). */
  notebook: string;
  /** Server time (seconds since the epoch) the proposal started to wait. */
  asked_at: number;
  /** Server time it is refused unless decided. */
  expires_at: number;
  run: string;
  seq: number;
  action: string;
  /** The proposal as one line a person can judge: `data = load_dataset(name='iris')`. */
  text: string;
  signature: string;
  params: Record<string, unknown>;
  inputs: Record<string, string>;
  params_schema: IJSONSchema;
  /** The MCP client's name. */
  client: string;
}

export interface IApprovalsReply {
  pending: IPendingApproval[];
  /** The server's clock (seconds since the epoch). */
  now: number;
}

export interface IApprovalDecision {
  approved: boolean;
  reason: string;
  /** Only the parameters the person changed; null to run the proposal as it is. */
  edited_params: Record<string, unknown> | null;
}

/** A failed request, with the server's JSON message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

export class TraceApi {
  constructor(private readonly settings = ServerConnection.makeSettings()) {}

  /** The notebook whose store is read; '' means the server root. */
  path = '';

  private url(
    endPoint: string,
    query: Record<string, string | number | undefined> = {}
  ): string {
    const params = new URLSearchParams({ path: this.path });
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== '') {
        params.set(key, String(value));
      }
    }
    return (
      URLExt.join(this.settings.baseUrl, 'rlam', 'api', endPoint) +
      '?' +
      params.toString()
    );
  }

  get<T>(
    endPoint: string,
    query: Record<string, string | number | undefined> = {}
  ): Promise<T> {
    return this.request<T>(endPoint, query, {});
  }

  private async request<T>(
    endPoint: string,
    query: Record<string, string | number | undefined>,
    init: RequestInit
  ): Promise<T> {
    const url = this.url(endPoint, query);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new ServerConnection.NetworkError(error as TypeError);
    }
    const text = await response.text();
    let data: any = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { message: text };
    }
    if (!response.ok) {
      throw new ApiError(
        response.status,
        (data && data.message) || response.statusText
      );
    }
    return data as T;
  }

  stamp(): Promise<IStampReply> {
    return this.get<IStampReply>('stamp');
  }

  runs(): Promise<IRunsReply> {
    return this.get<IRunsReply>('runs');
  }

  steps(
    runId: string,
    offset: number,
    limit: number,
    status: string,
    action: string
  ): Promise<IStepsPage> {
    return this.get<IStepsPage>(`runs/${encodeURIComponent(runId)}/steps`, {
      offset,
      limit,
      status,
      action
    });
  }

  step(runId: string, seq: number): Promise<IStepDetail> {
    return this.get<IStepDetail>(
      `runs/${encodeURIComponent(runId)}/steps/${seq}`
    );
  }

  actions(): Promise<{ actions: Record<string, IActionSchema> }> {
    return this.get('actions');
  }

  /** What waits for approval on the whole server (every notebook). */
  approvals(): Promise<IApprovalsReply> {
    return this.get<IApprovalsReply>('approvals');
  }

  /** Decide one waiting proposal; ApiError 404 once it no longer waits. */
  decide(approvalId: string, decision: IApprovalDecision): Promise<unknown> {
    return this.request(
      `approvals/${encodeURIComponent(approvalId)}`,
      {},
      { method: 'POST', body: JSON.stringify(decision) }
    );
  }

  /** The PNG of a figure artifact (fetched with the API's credentials, which an
   * `<img src>` pointing at the server would not carry). */
  async image(artifactId: string): Promise<Blob> {
    const url = this.url(`artifacts/${encodeURIComponent(artifactId)}/image`);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, {}, this.settings);
    } catch (error) {
      throw new ServerConnection.NetworkError(error as TypeError);
    }
    if (!response.ok) {
      let message = response.statusText;
      try {
        message = (await response.json()).message ?? message;
      } catch {
        // not JSON: keep the status text
      }
      throw new ApiError(response.status, message);
    }
    return response.blob();
  }
}
