import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Where the server extension (mistral_magic_lab) serves its routes. */
export const NAMESPACE = 'mistral-magic';

/**
 * A JSON request to the server extension, with the server's token and XSRF header
 * (`ServerConnection.makeRequest`); a non-2xx answer throws with the server's message.
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, NAMESPACE, endPoint);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  const data = (text ? JSON.parse(text) : {}) as T & { message?: string };
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data.message ?? text);
  }
  return data;
}
