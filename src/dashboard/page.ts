/**
 * The dashboard's HTML. Static: every dynamic part is filled in by the script through DOM APIs,
 * so the page carries no data and can be served with a strict Content-Security-Policy.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>edge-tasks</title>
<link rel="icon" href="/dashboard/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/dashboard/style.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<header>
  <h1>edge-tasks</h1>
  <span id="connection" data-state="idle" role="status" aria-live="polite">not connected</span>
  <span id="counts" aria-label="Concurrency"></span>
  <button id="forget" type="button" hidden>Forget key</button>
</header>
<noscript><p class="notice">The dashboard needs JavaScript.</p></noscript>
<main>
  <form id="key-form" hidden autocomplete="off">
    <h2>Open a namespace</h2>
    <label for="key">API key</label>
    <input id="key" name="key" type="password" required spellcheck="false" placeholder="sk_..." pattern="sk_\\S+">
    <button type="submit">Open</button>
    <p class="hint">The key stays in this tab's session storage and is sent only to this service.</p>
    <p id="key-error" class="error" role="alert"></p>
  </form>
  <section id="board" hidden>
    <section id="charts" aria-label="Activity">
      <figure><figcaption>Throughput <span class="hint">per minute</span></figcaption><div id="chart-throughput" class="chart-box"></div></figure>
      <figure><figcaption>Queue depth <span class="hint">against the limit</span></figcaption><div id="chart-depth" class="chart-box"></div></figure>
      <figure><figcaption>Failures <span class="hint">by error code</span></figcaption><div id="chart-failures" class="chart-box"></div></figure>
      <figure><figcaption>Task types <span class="hint">tasks shown</span></figcaption><div id="chart-types" class="chart-box"></div></figure>
    </section>
    <p class="hint charts-note">Charts: from the event stream since <time id="charts-since"></time>.</p>
    <form id="filters">
      <label>Status
        <select id="status-filter">
          <option value="">all</option>
          <option value="created,queued,processing">unfinished</option>
          <option value="created">created</option>
          <option value="queued">queued</option>
          <option value="processing">processing</option>
          <option value="completed">completed</option>
          <option value="failed">failed</option>
          <option value="cancelled">cancelled</option>
        </select>
      </label>
      <label>Task type
        <input id="type-filter" type="search" spellcheck="false" placeholder="any (comma-separated)">
      </label>
      <button type="submit">Apply</button>
    </form>
    <p id="notice" class="error" role="alert"></p>
    <table id="tasks">
      <thead><tr><th class="status">Status</th><th class="task">Task</th><th class="progress">Progress</th><th class="inputs">Inputs</th><th class="created">Created</th><th class="actions"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody id="rows"></tbody>
    </table>
    <p id="empty" class="hint">No tasks yet.</p>
    <button id="more" type="button" hidden>Load more</button>
  </section>
  <aside id="detail" hidden aria-labelledby="detail-title">
    <button id="detail-close" type="button" aria-label="Close">×</button>
    <h2><span id="detail-icon"></span><span id="detail-title"></span></h2>
    <pre id="detail-task"></pre>
    <h3>Logs</h3>
    <ol id="logs"></ol>
    <p id="logs-empty" class="hint">No log lines.</p>
  </aside>
</main>
</body>
</html>
`;

/** A small icon so that the browser's favicon request is answered. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2563eb"/><path d="M4 8.5l2.5 2.5L12 5" stroke="#fff" stroke-width="2" fill="none"/></svg>`;
