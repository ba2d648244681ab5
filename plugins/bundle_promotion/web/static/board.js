// The release board: reads /bundle-promotion/board with the Airflow UI's session and acts through
// the same API as the CLI. The server says what the user may do in each cell, and why not.

const API = new URL("../", import.meta.url).pathname; // the plugin's prefix, e.g. /bundle-promotion/
const REFRESH_MS = 2000;
const params = new URLSearchParams(location.search);
const bundlePage = params.get("bundle") || (params.get("dag") || "").replace(/^(promote|rollback|schedules)__/, "") || null;

const $ = (selector) => document.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat().filter((child) => child != null && child !== false));
  return node;
}

async function call(method, path, body) {
  const response = await fetch(API + path, {
    method,
    credentials: "same-origin",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const detail = data?.detail;
    const text = typeof detail === "string" ? detail : detail ? JSON.stringify(detail) : response.statusText;
    if (response.status === 401) throw new Error("You are not logged in to Airflow: log in, then reload.");
    throw new Error(text);
  }
  return data;
}

const short = (text, length) => (text || "").slice(0, length);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

function age(iso) {
  const minutes = Math.max(0, Math.floor((Date.now() - new Date(iso)) / 60000));
  const hours = Math.floor(minutes / 60);
  if (hours === 0) return `${minutes} min`;
  return hours < 48 ? `${hours} h ${minutes % 60} min` : `${Math.floor(hours / 24)} days`;
}

function runLink(url, text) {
  // Airflow's own pages open in the whole window, not in the frame the board sits in.
  return url ? el("a", { href: url, target: "_top" }, text) : el("span", {}, text);
}

function actionButton(label, permission, onclick, extra = {}) {
  return el(
    "button",
    { type: "button", disabled: !permission.allowed, title: permission.reason || label, onclick, ...extra },
    label,
  );
}

function whyDisabled(actions) {
  const reasons = [...new Set(Object.values(actions).filter((p) => !p.allowed && p.reason).map((p) => p.reason))];
  return reasons.length ? el("ul", { class: "why" }, reasons.map((reason) => el("li", {}, reason))) : null;
}

function releaseLine(release) {
  return el(
    "div",
    { class: "release" },
    el("strong", { class: "version" }, release.version),
    " ",
    el("code", { title: release.commit }, short(release.commit, 7)),
    " ",
    el("code", { class: "digest", title: release.digest }, "sha256:" + short(release.digest, 12)),
  );
}

function health(running) {
  const labels = {
    succeeded: ["ok", "verified · tests passed"],
    deployed: ["busy", "deployed · checks running"],
    deploying: ["busy", "deploying"],
    failed: ["bad", "failed" + (running.detail ? ": " + running.detail : "")],
  };
  const [kind, text] = labels[running.state] || ["busy", running.state];
  return el("span", { class: `badge ${kind}` }, text);
}

function cellView(row, cell) {
  const { running, waiting, hold } = cell;
  const parts = [el("h3", {}, cell.environment, el("span", { class: "muted" }, ` target ${cell.target}`))];
  if (running) {
    parts.push(
      releaseLine(running.release),
      el("div", {}, health(running)),
      el("div", { class: "muted" }, "since ", when(running.since), " · ", runLink(running.run_url, running.run_id)),
    );
  } else {
    parts.push(el("p", { class: "muted" }, "no release yet"));
  }
  parts.push(el("div", { class: "schedules" }, "schedules: ", el("span", { class: "schedule-state" }, cell.schedules)));
  if (hold) {
    parts.push(
      el(
        "div",
        { class: "hold", role: "status" },
        el("strong", {}, "Held"),
        `: ${hold.reason} — by ${hold.held_by}, ${when(hold.held_at)}`,
      ),
    );
  }
  if (waiting) parts.push(waitingView(waiting));
  if (cell.lock_wait) parts.push(lockWaitView(cell.lock_wait));
  if (cell.drift) parts.push(driftView(cell.drift));
  const act = (kind, extra) => () => openAction(kind, row, cell, extra);
  // Breaking a lock is offered only while a deploy waits on one; otherwise it is not worth a line.
  const { break_lock, ...others } = cell.actions;
  const actions = cell.lock_wait ? cell.actions : others;
  parts.push(
    el(
      "div",
      { class: "actions" },
      actionButton("Approve", cell.actions.approve, act("approve")),
      actionButton("Reject", cell.actions.approve, act("reject")),
      actionButton("Roll back", cell.actions.rollback, act("rollback")),
      actionButton("Clear hold", cell.actions.clear_hold, act("clear_hold")),
      actionButton("Heal", cell.actions.heal, act("heal")),
      cell.lock_wait ? actionButton("Break lock", break_lock, act("break_lock")) : null,
    ),
    whyDisabled(actions),
  );
  return el("td", { class: "cell", "data-bundle": row.bundle, "data-environment": cell.environment }, parts);
}

function lockWaitView(wait) {
  return el(
    "div",
    { class: "lock-wait", role: "status" },
    runLink(wait.run_url, "deploy"),
    ` waiting on a lock held by ${wait.holder}`,
    wait.held_since ? ` for ${age(wait.held_since)}` : "",
    el("div", { class: "muted" }, el("code", {}, wait.lock_path)),
  );
}

function waitingView(waiting) {
  return el(
    "section",
    { class: "waiting" },
    el("div", {}, "waiting at the gates: ", releaseLine(waiting.release)),
    el("div", { class: "muted" }, runLink(waiting.run_url, waiting.run_id), waiting.triggered_by ? ` · triggered by ${waiting.triggered_by}` : ""),
    el(
      "ul",
      { class: "gates" },
      waiting.gates.map((gate) =>
        el("li", { class: `gate gate-${gate.status}`, "data-gate": gate.gate }, el("strong", {}, gate.gate), `: ${gate.reason}`),
      ),
    ),
    waiting.decisions.length
      ? el(
          "ul",
          { class: "decisions" },
          waiting.decisions.map((d) =>
            el("li", {}, `${d.decision === "approve" ? "✓" : "✗"} ${d.approver}${d.meaning ? ` (${d.meaning})` : ""}: ${d.reason}`),
          ),
        )
      : null,
    waiting.may_approve.length ? el("div", { class: "muted" }, "may still approve — ", waiting.may_approve.join("; ")) : null,
  );
}

function boardView(board) {
  const rows = board.bundles.filter((row) => !bundlePage || row.bundle === bundlePage);
  if (!rows.length) {
    return el("p", { class: "muted" }, bundlePage ? `No promotion spec for ${bundlePage}, or you may not see it.` : "No promotion specs yet.");
  }
  return el(
    "table",
    { class: "board" },
    el("tbody", {}, rows.map((row) =>
      el(
        "tr",
        { "data-bundle": row.bundle },
        el(
          "th",
          { scope: "row" },
          el("a", { href: `?bundle=${encodeURIComponent(row.bundle)}` }, row.bundle),
          el("div", {}, actionButton("Promote…", row.actions.promote, () => openAction("promote", row, null))),
          whyDisabled(row.actions),
        ),
        row.cells.map((cell) => cellView(row, cell)),
      ),
    )),
  );
}

function diffView(history) {
  const versions = [...new Set(history.environments.flatMap((env) => env.deployments.map((d) => d.release.version)))];
  if (versions.length < 2) return null;
  const choose = (name, selected) =>
    el("select", { name }, versions.map((v) => el("option", { value: v, selected: v === selected }, v)));
  const base = choose("base", versions[1]);
  const head = choose("head", versions[0]);
  const result = el("div", { class: "diff-result", "aria-live": "polite" });
  async function compare() {
    try {
      const diff = await call("GET", `board/bundles/${history.bundle}/diff?base=${base.value}&head=${head.value}`);
      result.replaceChildren(
        el("ul", {}, diff.commits.map((c) => el("li", {}, el("code", {}, short(c.sha, 7)), ` ${c.subject} — ${c.author}`))),
        el("p", { class: "muted" }, `config ${diff.config_changed ? "changed" : "unchanged"}; artifacts changed: ${diff.artifacts_changed.join(", ") || "none"}`),
      );
    } catch (error) {
      result.replaceChildren(el("p", { role: "alert" }, error.message));
    }
  }
  return el("section", { class: "diff" }, el("h2", {}, "Compare releases"), base, " → ", head, " ", el("button", { type: "button", onclick: compare }, "Compare"), result);
}

function historyView(history) {
  return el(
    "section",
    { class: "history" },
    diffView(history),
    el("h2", {}, "History"),
    history.environments.map((env) =>
      el(
        "details",
        { open: true, "data-environment": env.environment },
        el("summary", {}, env.environment, el("span", { class: "muted" }, ` ${env.deployments.length} deployments`)),
        el(
          "table",
          {},
          el("thead", {}, el("tr", {}, ["release", "outcome", "run", "applied", "evidence"].map((h) => el("th", {}, h)))),
          el("tbody", {}, env.deployments.map((d) =>
            el(
              "tr",
              { class: d.state },
              el("td", {}, releaseLine(d.release)),
              el("td", {}, d.state, d.detail ? el("div", { class: "muted" }, d.detail) : null),
              el("td", {}, runLink(d.run_url, d.run_id)),
              el("td", {}, when(d.applied_at)),
              el(
                "td",
                {},
                el("a", { href: `${API}board/bundles/${history.bundle}/releases/${d.release.version}/evidence.md` }, "Markdown"),
                " · ",
                el("a", { href: `${API}board/bundles/${history.bundle}/releases/${d.release.version}/evidence.json` }, "JSON"),
              ),
            ),
          )),
        ),
        env.decisions.length
          ? el("ul", { class: "decisions" }, env.decisions.map((d) =>
              el("li", {}, `${when(d.given_at)} · ${d.approver}: ${d.decision} — ${d.reason}`),
            ))
          : null,
      ),
    ),
  );
}

let current = null; // the action the dialog is open for

// The newest drift check: in sync, or each drifted field under a badge.
function driftView(drift) {
  const checked = `checked ${when(drift.checked_at)}`;
  if (drift.status !== "drifted") {
    return el("div", { class: "drift in-sync" }, `${drift.status.replace("_", " ")} · ${checked}`);
  }
  return el(
    "details",
    { class: "drift drifted", role: "status" },
    el("summary", {}, `drifted: ${drift.findings.length} field(s) · ${checked}`),
    el("ul", {}, ...drift.findings.map((finding) => el("li", {}, finding))),
  );
}

async function openAction(kind, row, cell) {
  const titles = {
    approve: `Approve ${cell?.waiting?.release.version} for ${cell?.environment}`,
    reject: `Reject ${cell?.waiting?.release.version} for ${cell?.environment}`,
    rollback: `Roll back ${cell?.environment} of ${row.bundle}`,
    clear_hold: `Clear the hold on ${cell?.environment} of ${row.bundle}`,
    heal: `Heal the drift of ${cell?.environment} of ${row.bundle}`,
    break_lock: `Break the deploy lock of ${cell?.environment} of ${row.bundle}`,
    promote: `Promote ${row.bundle}`,
  };
  current = { kind, row, cell };
  const form = $("#action-form");
  form.reset();
  $("#action-title").textContent = titles[kind];
  const summaries = {
    clear_hold: () => `Held: ${cell.hold.reason}`,
    heal: () => cell.drift.findings.join("; "),
    approve: () => cell.waiting.gates.map((g) => g.reason).join("; "),
    reject: () => cell.waiting.gates.map((g) => g.reason).join("; "),
    break_lock: () =>
      `Held by ${cell.lock_wait.holder}` + (cell.lock_wait.held_since ? ` for ${age(cell.lock_wait.held_since)}` : "") +
      ". Break it only if that deployment is dead.",
  };
  $("#action-summary").textContent = summaries[kind]?.() ?? "";
  $("#signature-fields").hidden = !(cell?.signature === "part11" && (kind === "approve" || kind === "reject"));
  $("#reason-field").hidden = kind === "promote";
  form.reason.required = kind !== "promote";
  hideError();
  const versionField = $("#version-field");
  versionField.hidden = !(kind === "promote" || kind === "rollback");
  form.version.replaceChildren();
  $("#action").showModal();
  if (kind === "promote") {
    await fillVersions(form.version, call("GET", `board/bundles/${row.bundle}/versions`));
  } else if (kind === "rollback") {
    await fillVersions(form.version, earlierReleases(row.bundle, cell), "last known-good release");
  }
}

async function earlierReleases(bundle, cell) {
  const history = await call("GET", `board/bundles/${bundle}?limit=200`);
  const env = history.environments.find((e) => e.environment === cell.environment);
  const running = cell.running?.release.version;
  const versions = env.deployments.filter((d) => d.state === "succeeded" && d.release.version !== running).map((d) => d.release.version);
  return [...new Set(versions)];
}

async function fillVersions(select, versions, emptyLabel) {
  try {
    const choices = await versions;
    select.replaceChildren(
      ...(emptyLabel ? [el("option", { value: "" }, emptyLabel)] : []),
      ...choices.map((version) => el("option", { value: version }, version)),
    );
  } catch (error) {
    showError(error.message);
  }
}

function showError(message) {
  const box = $("#action-error");
  box.textContent = message;
  box.hidden = false;
}

function hideError() {
  $("#action-error").hidden = true;
}

async function confirmAction() {
  const { kind, row, cell } = current;
  const form = $("#action-form");
  const reason = form.reason.value.trim();
  const dag = row.promote_dag;
  const env = cell?.environment;
  const requests = {
    approve: () => call("POST", `dags/${dag}/environments/${env}/approvals`, decision("approve")),
    reject: () => call("POST", `dags/${dag}/environments/${env}/approvals`, decision("reject")),
    clear_hold: () => call("POST", `dags/${dag}/environments/${env}/hold/clear`, { reason }),
    heal: () => call("POST", `dags/${dag}/environments/${env}/drift/heal`, { reason }),
    rollback: () =>
      call("POST", `board/bundles/${row.bundle}/environments/${env}/rollback`, { target_version: form.version.value || null, reason }),
    promote: () => call("POST", `board/bundles/${row.bundle}/promote`, { version: form.version.value }),
    break_lock: () =>
      call("POST", `board/bundles/${row.bundle}/environments/${env}/lock/break`, { lock_id: cell.lock_wait.lock_id, reason }),
  };

  function decision(verdict) {
    const signed = cell.signature === "part11";
    return {
      release_digest: cell.waiting.release.digest,
      decision: verdict,
      reason,
      ...(signed ? { meaning: form.meaning.value, password: form.password.value } : {}),
    };
  }

  $("#action-confirm").disabled = true;
  try {
    await requests[kind]();
    $("#action").close();
    await refresh();
  } catch (error) {
    showError(error.message);
    form.password.value = "";
  } finally {
    $("#action-confirm").disabled = false;
  }
}

async function refresh() {
  const content = $("#content");
  try {
    const board = await call("GET", "board");
    // A comparison on screen stays there; the history under it is read again on the next refresh.
    const comparing = content.querySelector(".diff-result")?.childElementCount ? content.querySelector(".history") : null;
    const views = [boardView(board)];
    if (bundlePage) views.push(comparing || historyView(await call("GET", `board/bundles/${bundlePage}`)));
    $("#whoami").textContent = `Signed in to Airflow as ${board.user}`;
    content.replaceChildren(...views);
    $("#problem").hidden = true;
  } catch (error) {
    $("#problem").textContent = error.message;
    $("#problem").hidden = false;
  } finally {
    content.setAttribute("aria-busy", "false");
  }
}

$("#action-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  if (!form.reportValidity()) return;
  confirmAction();
});
$("#action-cancel").addEventListener("click", () => $("#action").close());
if (bundlePage) $("#title-bundle").textContent = ` › ${bundlePage}`;

await refresh();
setInterval(() => {
  if (!$("#action").open) refresh(); // a dialog's choices stay put while it is open
}, REFRESH_MS);
