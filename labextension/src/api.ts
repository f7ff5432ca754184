/**
 * Thin client of the server extension's REST API (`<base_url>/mldeploy/api/`).
 *
 * Every call goes through Jupyter's `ServerConnection`, so the token / XSRF cookie are sent. A non-2xx
 * answer becomes an `APIError` carrying the server's `{"message"}` text, which the sidebar shows.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** One registered model version, as `Model.serialize()` returns it. */
export interface IModelVersion {
  name: string;
  version: number;
  id: string;
  tags: { [key: string]: string };
  description: string | null;
  createdTime: string;
  sampleInput: unknown;
  /** v1's `model_framework` (`ScikitLearn`, `Onnx`, `MLflow` ...): such a version deploys with no code. */
  modelFramework: string | null;
}

/** A model name with its versions, newest first. */
export interface IModelGroup {
  name: string;
  latestVersion: number;
  versions: IModelVersion[];
}

/** A service, as `Webservice.serialize()` returns it. */
export interface IService {
  name: string;
  state: string;
  scoringUri?: string;
  swaggerUri?: string;
  /** Open Inference Protocol V2 root and MLflow's /invocations of the same server. */
  v2Uri?: string;
  invocationsUri?: string;
  /** Key auth is on: callers need `Authorization: Bearer <key>` (the keys come from `services/<name>/keys`). */
  authEnabled?: boolean;
  models?: string[];
  error?: string | null;
}

/** One run as `GET runs` lists it (`jupyter_mldeploy.actions.list_runs`). */
export interface IRun {
  id: string;
  experiment: string;
  number: number;
  kind: string;
  /** `Running`, `Completed`, `Failed` or `Canceled`. */
  status: string;
  startTime: string;
  endTime: string | null;
  durationSeconds: number | null;
  parameters: { [name: string]: unknown };
  /** The last scalar value of each metric. */
  metrics: { [name: string]: unknown };
  tags: { [key: string]: string };
  /** `name:version` of each model registered from the run. */
  models: string[];
  error: string | null;
}

/** `GET runs`: runs newest first, and every experiment's name. */
export interface IRunListing {
  runs: IRun[];
  experiments: string[];
}

/** `GET runs/<id>` (`jupyter_mldeploy.actions.show_run`): every metric whole, files, folder and models. */
export interface IRunDetails extends Omit<IRun, 'models'> {
  source: string | null;
  files: string[];
  folder: string;
  models: { id: string; name: string; version: number; createdTime: string }[];
}

/** The score proxy's answer: what the service replied, and how long it took (ms). */
export interface IScoreResult {
  status: number;
  body: string;
  latency_ms: number;
  headers: { [key: string]: string };
  /** The URI the proxy called: `/score`, `/v2/models/<model>/infer` or `/invocations`. */
  uri: string;
}

/** The wire protocols a service answers, as the score proxy's `?protocol=` names them (`actions.PROTOCOLS`). */
export const PROTOCOLS: { value: string; label: string }[] = [
  { value: 'azureml', label: 'Azure ML /score' },
  { value: 'v2', label: 'Open Inference V2' },
  { value: 'mlflow', label: 'MLflow /invocations' }
];

/**
 * A deployment the sidebar started (`POST models/<name>/<version>/deploy`), as `GET deploys` lists it: under
 * way (`Deploying`) until its service is healthy, or `Failed` with the reason until dismissed.
 */
export interface IDeployJob {
  service: string;
  model: string;
  state: 'Deploying' | 'Failed';
  error: string | null;
  notes: string[];
  startedTime: string;
  finishedTime: string | null;
}

/** The JSON body of an error answer: `MLDeployError.to_dict()` (a score proxy's 400 adds `problems`). */
export interface IErrorBody {
  message?: string;
  error?: string;
  /** One line per field of a request body that does not fit the service's input schema. */
  problems?: string[];
}

/** An error answered by the server, with its HTTP status and JSON body (empty when it sent none). */
export class APIError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: IErrorBody = {}
  ) {
    super(message);
  }
}

/**
 * Call `mldeploy/api/<path>` and return the decoded JSON answer.
 *
 * @param path - Route below `mldeploy/api/`, already URL-encoded.
 * @param init - Fetch options (method, body, headers).
 * @throws APIError with the server's message on any non-2xx answer or network failure.
 */
export async function requestAPI<T>(
  path: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'mldeploy', 'api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new APIError(`Cannot reach the Jupyter server: ${error}`, 0);
  }
  const text = await response.text();
  let data: any = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!response.ok) {
    const body: IErrorBody =
      data !== null && typeof data === 'object' ? data : {};
    const message = body.message ? body.message : response.statusText;
    throw new APIError(
      `${message} (HTTP ${response.status})`,
      response.status,
      body
    );
  }
  return data as T;
}

/** URL-encode one path segment (model, service or run name). */
export function seg(value: string | number): string {
  return encodeURIComponent(String(value));
}
