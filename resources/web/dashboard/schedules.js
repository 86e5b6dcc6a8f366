// The schedule list (enable toggle, next run, last outcome, delete) and the scheduling form
// with presets and live validation through /tests/schedule/preview.

import { api } from "./api.js";
import { badge, debounce, fill, fmtTime, h, placeInOrder, setText, timeEl } from "./util.js";

export class ScheduleList {
  constructor({ tbody, empty, messages, names, pluginId = null }) {
    Object.assign(this, { tbody, empty, messages, names, pluginId });
    this.rows = new Map();
  }

  /** The schedules from the server; the caller renders them with setAll() once the
   * plugin names are known. */
  async fetch() {
    const query = this.pluginId ? `?plugin_name=${encodeURIComponent(this.pluginId)}` : "";
    return (await api(`/tests/schedules${query}`)).schedules;
  }

  setAll(schedules) {
    const keep = new Set(schedules.map((s) => s.id));
    for (const [id] of this.rows) {
      if (!keep.has(id)) this.rows.delete(id);
    }
    placeInOrder(this.tbody, schedules.map((s) => this.upsertRow(s)));
    this.empty.hidden = this.rows.size > 0;
  }

  /** A schedules.changed event. */
  apply(schedule, change) {
    if (this.pluginId && schedule.plugin_id !== this.pluginId) return;
    if (change === "deleted") {
      const tr = this.rows.get(schedule.id);
      if (tr) tr.remove();
      this.rows.delete(schedule.id);
    } else {
      const isNew = !this.rows.has(schedule.id);
      const tr = this.upsertRow(schedule);
      if (isNew) this.tbody.append(tr);
    }
    this.empty.hidden = this.rows.size > 0;
  }

  upsertRow(s) {
    let tr = this.rows.get(s.id);
    const name = this.names.get(s.plugin_id) || s.plugin_id;
    if (!tr) {
      const toggle = h("input", { type: "checkbox", role: "switch", class: "switch",
        "aria-label": `Enabled: ${name}, ${s.expression}` });
      toggle.addEventListener("change", () => this.toggle(s.id, toggle));
      const remove = h("button", { type: "button", class: "small danger-quiet",
        "aria-label": `Delete schedule ${s.expression} of ${name}` }, "Delete");
      remove.addEventListener("click", () => this.remove(s.id, remove));
      tr = h("tr", { dataset: { scheduleId: s.id } },
        h("td", {}, this.pluginId ? null : h("a", {
          href: `/tests/plugin/${encodeURIComponent(s.plugin_id)}`, class: "sched-plugin" }, name),
        h("div", { class: "sched-test" })),
        h("td", { class: "sched-when" }),
        h("td", { class: "sched-next" }),
        h("td", { class: "sched-last" }),
        h("td", {}, toggle),
        h("td", { class: "actions" }, remove));
      this.rows.set(s.id, tr);
    }
    const cell = (cls) => tr.querySelector(`.${cls}`);
    setText(cell("sched-test"), s.test_id || "whole suite");
    cell("sched-test").classList.toggle("muted", !s.test_id);
    const when = [h("code", {}, s.expression)];
    if (s.timezone) when.push(h("span", { class: "muted small" }, ` ${s.timezone}`));
    if (s.priority !== "medium") when.push(h("span", { class: "muted small" }, ` · ${s.priority}`));
    cell("sched-when").replaceChildren(...when);
    cell("sched-next").replaceChildren(s.enabled && s.next_run_at ? timeEl(s.next_run_at)
      : h("span", { class: "muted" }, s.enabled ? "–" : "paused"));
    const last = cell("sched-last");
    if (s.last_status) {
      const link = s.last_run_id ? h("span", { class: "muted small" }, ` ${fmtTime(s.last_fire_at)}`) : null;
      fill(last, badge(s.last_status), link);
    } else {
      last.replaceChildren(h("span", { class: "muted" }, "not yet"));
    }
    tr.querySelector("input.switch").checked = Boolean(s.enabled);
    tr.dataset.enabled = String(Boolean(s.enabled));
    return tr;
  }

  async toggle(id, input) {
    const wanted = input.checked;
    input.disabled = true;
    try {
      const body = await api(`/tests/schedule/${encodeURIComponent(id)}`,
        { method: "PATCH", body: { enabled: wanted } });
      this.apply(body.schedule, "updated");
      this.messages.show(wanted ? "Schedule enabled." : "Schedule paused.", "ok");
    } catch (err) {
      input.checked = !wanted;
      this.messages.error(`Could not change the schedule: ${err.message}`);
    } finally {
      input.disabled = false;
    }
  }

  async remove(id, button) {
    // Two steps instead of confirm(): the first click arms, a second within 4 s deletes.
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      button.textContent = "Confirm delete";
      button.classList.add("danger");
      setTimeout(() => {
        if (!button.isConnected) return;
        button.dataset.armed = "false";
        button.textContent = "Delete";
        button.classList.remove("danger");
      }, 4000);
      return;
    }
    button.disabled = true;
    try {
      await api(`/tests/schedule/${encodeURIComponent(id)}`, { method: "DELETE" });
      const tr = this.rows.get(id);
      if (tr) tr.remove();
      this.rows.delete(id);
      this.empty.hidden = this.rows.size > 0;
      this.messages.show("Schedule deleted.", "ok");
    } catch (err) {
      button.disabled = false;
      this.messages.error(`Could not delete the schedule: ${err.message}`);
    }
  }
}

export class ScheduleForm {
  constructor({ form, messages, onCreated }) {
    Object.assign(this, { form, messages, onCreated });
    const $ = (id) => form.querySelector(`#${id}`);
    this.plugin = $("sf-plugin");
    this.test = $("sf-test");
    this.tests = form.querySelector("#sf-tests");
    this.expression = $("sf-expression");
    this.timezone = $("sf-timezone");
    this.preview = $("sf-preview");
    this.error = $("sf-error");
    this.submit = $("sf-submit");
    this.presets = [...form.querySelectorAll("[data-preset]")];
    this.previewSeq = 0;
    this.valid = false;

    for (const chip of this.presets) {
      chip.addEventListener("click", () => {
        this.expression.value = chip.dataset.preset;
        this.markPreset();
        this.check();
        this.expression.focus();
      });
    }
    const recheck = debounce(() => this.check(), 250);
    this.expression.addEventListener("input", () => {
      this.markPreset();
      recheck();
    });
    this.timezone.addEventListener("input", recheck);
    this.timezone.addEventListener("change", () => this.check());
    this.plugin.addEventListener("change", () => this.loadTests());
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.create();
    });
    this.markPreset();
    this.check();
    this.loadTests();
  }

  markPreset() {
    for (const chip of this.presets) {
      chip.setAttribute("aria-pressed", String(chip.dataset.preset === this.expression.value.trim()));
    }
  }

  /** Suggest the chosen plugin's collected tests in the test field. */
  async loadTests() {
    const plugin = this.plugin.value;
    if (!plugin) return;
    try {
      const body = await api(`/tests/discovered?plugin_name=${encodeURIComponent(plugin)}`);
      if (this.plugin.value !== plugin) return;
      const files = new Set();
      const options = [];
      for (const t of body.tests) {
        if (!files.has(t.file)) {
          files.add(t.file);
          options.push(h("option", { value: t.file }));
        }
        options.push(h("option", { value: t.nodeid }));
      }
      this.tests.replaceChildren(...options);
    } catch {
      this.tests.replaceChildren();
    }
  }

  /** Live validation: the server's next five fire times, or its error text. */
  async check() {
    const expression = this.expression.value.trim();
    const seq = ++this.previewSeq;
    if (!expression) {
      this.showPreview(null, "schedule_expression: give an expression or pick a preset");
      return;
    }
    const params = new URLSearchParams({ expression, count: "5" });
    const zone = this.timezone.value.trim();
    if (zone) params.set("timezone", zone);
    try {
      const body = await api(`/tests/schedule/preview?${params}`);
      if (seq === this.previewSeq) this.showPreview(body.next, null);
    } catch (err) {
      if (seq === this.previewSeq) this.showPreview(null, err.message);
    }
  }

  showPreview(times, error) {
    this.valid = Boolean(times);
    this.expression.setAttribute("aria-invalid", String(!this.valid));
    this.preview.dataset.state = this.valid ? "ok" : "error";
    if (error) {
      this.preview.replaceChildren(h("p", { class: "preview-error" }, error));
      return;
    }
    const zone = this.timezone.value.trim();
    const options = { weekday: "short", year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit" };
    let fmt;
    try {
      fmt = new Intl.DateTimeFormat(undefined, { ...options, ...(zone ? { timeZone: zone } : {}) });
    } catch {
      fmt = new Intl.DateTimeFormat(undefined, options); // a zone Python knows but ICU not
    }
    const safeFormat = (iso) => fmt.format(new Date(iso));
    this.preview.replaceChildren(
      h("p", { class: "preview-head" }, `Next ${times.length} runs${zone ? ` (${zone})` : ""}:`),
      h("ol", { class: "preview-times" }, times.map((iso) => h("li", {}, h("time", { datetime: iso }, safeFormat(iso))))));
  }

  async create() {
    this.error.hidden = true;
    const body = {
      plugin_name: this.plugin.value,
      schedule_expression: this.expression.value.trim(),
      priority: this.form.querySelector("#sf-priority").value,
      enabled: this.form.querySelector("#sf-enabled").checked,
    };
    const test = this.test.value.trim();
    if (test) body.test_name = test;
    const timeout = this.form.querySelector("#sf-timeout").value.trim();
    if (timeout) body.timeout = Number(timeout);
    const zone = this.timezone.value.trim();
    if (zone) body.timezone = zone;
    this.submit.disabled = true;
    try {
      const created = await api("/tests/schedule", { method: "POST", body });
      const s = created.schedule;
      this.messages.ok(`Scheduled ${s.test_id || s.plugin_id} (${s.expression})` +
        (s.next_run_at ? `: next run ${fmtTime(s.next_run_at)}.` : ", paused."));
      if (this.onCreated) this.onCreated(s);
      this.test.value = "";
    } catch (err) {
      this.error.textContent = err.message;
      this.error.hidden = false;
      const field = err.message.split(":", 1)[0];
      const target = { schedule_expression: this.expression, timezone: this.timezone,
        test_name: this.test, timeout: this.form.querySelector("#sf-timeout") }[field];
      if (target) target.focus();
    } finally {
      this.submit.disabled = false;
    }
  }

  /** Prefill for "schedule this test" from the plugin page. */
  prefill(pluginId, testName) {
    this.plugin.value = pluginId;
    this.test.value = testName || "";
    this.form.scrollIntoView({ behavior: "smooth", block: "center" });
    this.expression.focus();
  }
}

export function setupSchedules({ messages, names, pluginId = null }) {
  const list = new ScheduleList({ tbody: document.getElementById("schedules"),
    empty: document.getElementById("schedules-empty"), messages, names, pluginId });
  const form = new ScheduleForm({ form: document.getElementById("schedule-form"), messages,
    onCreated: (s) => list.apply(s, "created") });
  return { list, form };
}
