// fetch() for the server's JSON API; errors carry the server's own `detail` text.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

function detailText(body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's validation errors: name the field the way our own messages do.
    return detail.map((e) => {
      const loc = (e.loc || []).filter((part) => !["body", "query", "path"].includes(part));
      return `${loc.join(".") || "request"}: ${e.msg}`;
    }).join("; ");
  }
  return "";
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, signal, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "the server did not answer (is the app still running?)");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const text = detailText(data) || response.statusText;
    throw new ApiError(response.status, response.status === 401
      ? `${text} — reopen the dashboard from the app or its login link` : text);
  }
  return data;
}

export const runTests = (pluginName, testName) =>
  api("/tests/run", { method: "POST",
    body: testName ? { plugin_name: pluginName, test_name: testName } : { plugin_name: pluginName } });

export const cancelRun = (runId) => api(`/tests/runs/${runId}`, { method: "DELETE" });

export const rerunFailed = (pluginId) =>
  api(`/tests/dashboard/plugins/${encodeURIComponent(pluginId)}/rerun-failed`,
    { method: "POST" });

export const discover = (pluginName) =>
  api(pluginName ? `/tests/discover?plugin_name=${encodeURIComponent(pluginName)}`
    : "/tests/discover", { method: "POST" });
