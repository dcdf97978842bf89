// Shared helpers for the pages: API calls (with the token, asked for once on 401), formatting, nav.
const curate = {
  async api(path, options = {}) {
    const headers = Object.assign({"Content-Type": "application/json"}, options.headers || {});
    const token = localStorage.getItem("curate_token");
    if (token) headers["Authorization"] = "Bearer " + token;
    const response = await fetch(path, Object.assign({}, options, {headers}));
    if (response.status === 401 && !options.retried) {
      const given = await curate.askToken();
      if (given) return curate.api(path, Object.assign({}, options, {retried: true}));
    }
    const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    if (!response.ok) {
      let message = body && body.detail !== undefined ? body.detail : response.statusText;
      if (Array.isArray(message)) message = message.map(d => d.loc.join(".") + ": " + d.msg).join("\n");
      throw new Error(response.status + ": " + message);
    }
    return body;
  },
  // The token is asked for once per page load, however many calls get 401 at the same time.
  tokenAnswer: null,
  askToken() {
    curate.tokenAnswer ??= Promise.resolve().then(() => {
      const given = prompt("This service needs its token:");
      if (given) {
        localStorage.setItem("curate_token", given);
        document.cookie = "curate_token=" + encodeURIComponent(given) + "; path=/; SameSite=Strict";
      }
      return given;
    });
    return curate.tokenAnswer;
  },
  esc(value) {
    return String(value ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  },
  num(value) { return value === null || value === undefined ? "-" : Number(value).toLocaleString("en"); },
  when(seconds) { return seconds ? new Date(seconds * 1000).toLocaleString() : "-"; },
  duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    if (seconds < 90) return Math.round(seconds) + " s";
    return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
  },
  bar(fraction, status, big) {
    const pct = Math.round(100 * (fraction || 0));
    const cls = "bar" + (big ? " big" : "") + (status === "failed" || status === "cancelled" ? " failed" : "");
    return `<span style="display:inline-flex;align-items:center;width:${big ? "100%" : "auto"}">` +
      `<span class="${cls}" role="progressbar" aria-valuenow="${pct}"><span style="width:${pct}%"></span></span>` +
      `<span class="pct">${pct}%</span></span>`;
  },
  status(status) { return `<span class="status ${curate.esc(status)}">${curate.esc(status)}</span>`; },
  nav(current) {
    const links = [["/runs", "Runs"], ["/datasets", "Datasets"], ["/train", "Training"], ["/docs", "API"]];
    document.body.insertAdjacentHTML("afterbegin", "<header><b>curate</b>" + links.map(([href, text]) =>
      `<a href="${href}" class="${href === current ? "on" : ""}">${text}</a>`).join("") + "</header>");
  },
};
