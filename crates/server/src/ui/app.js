// vsess web page: sign in, list and end your sessions; administrators also see
// everyone's sessions and set the service message.
//
// Everything the server sends goes into the page with textContent (never as HTML), and
// every state-changing request carries the X-CSRF-Token header.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const $ = (id) => document.getElementById(id);

  let me = null; // {user, role, admin, canSetMessage, csrf, expires}
  let timer = null;
  let refreshing = false;

  // ---- HTTP -------------------------------------------------------------------------

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      if (me && me.csrf) headers["X-CSRF-Token"] = me.csrf;
    }
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    if (r.status === 204) return null;
    let data = null;
    try {
      data = await r.json();
    } catch (_) {
      data = null;
    }
    if (!r.ok) {
      const msg = data && typeof data.error === "string" ? data.error : "HTTP " + r.status;
      throw new HttpError(r.status, msg);
    }
    return data;
  }

  // ---- views ------------------------------------------------------------------------

  function show(el, yes) {
    el.hidden = !yes;
  }

  function showSignIn(message) {
    me = null;
    stopRefresh();
    show($("loading"), false);
    show($("app-view"), false);
    show($("who"), false);
    show($("sign-in-view"), true);
    const err = $("sign-in-error");
    err.textContent = message || "";
    show(err, Boolean(message));
    $("password").value = "";
    $("username").focus();
  }

  function showApp() {
    show($("loading"), false);
    show($("sign-in-view"), false);
    show($("app-view"), true);
    show($("who"), true);
    $("who-name").textContent = me.user;
    $("who-role").textContent = me.role;
    show($("all-card"), me.admin);
    show($("admin-message"), me.canSetMessage);
    show($("app-error"), false);
    if (me.canSetMessage) loadMessageEditor();
    refresh();
    startRefresh();
  }

  function appError(message) {
    const el = $("app-error");
    el.textContent = message || "";
    show(el, Boolean(message));
  }

  // ---- formatting -------------------------------------------------------------------

  function idleText(seconds) {
    const s = Math.max(0, Math.floor(Number(seconds) || 0));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60) + " s";
    const h = Math.floor(m / 60);
    if (h < 24) return h + " h " + (m % 60) + " min";
    const d = Math.floor(h / 24);
    return d + " d " + (h % 24) + " h";
  }

  function clockText() {
    return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  // ---- session tables ---------------------------------------------------------------

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  // Rows are kept per session key and updated in place, so a refresh neither flickers
  // nor moves a button out from under the pointer.
  function renderTable(tbody, emptyEl, sessions, withUser) {
    const existing = new Map();
    for (const tr of Array.from(tbody.rows)) existing.set(tr.dataset.key, tr);
    const seen = new Set();
    let prev = null;
    for (const s of sessions) {
      const key = String(s.key);
      seen.add(key);
      let tr = existing.get(key);
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.key = key;
        if (withUser) tr.appendChild(cell("", "user"));
        tr.appendChild(cell("", "agent"));
        tr.appendChild(cell("", "ip mono"));
        tr.appendChild(cell("", "login"));
        tr.appendChild(cell("", "idle"));
        const td = document.createElement("td");
        td.className = "action";
        const b = document.createElement("button");
        b.type = "button";
        b.className = "danger end";
        b.textContent = "End session";
        b.addEventListener("click", () => endSession(key, b));
        td.appendChild(b);
        tr.appendChild(td);
      }
      const set = (cls, text, title) => {
        const td = tr.querySelector("td." + cls.split(" ")[0]);
        if (td && td.textContent !== text) td.textContent = text;
        if (td && title !== undefined) td.title = title;
      };
      if (withUser) set("user", s.user || "");
      set("agent", s.userAgent || "(none)", s.userAgent || "");
      set("ip", s.ip || "");
      set("login", s.loginTime || "", s.loginTimeIso || "");
      set("idle", idleText(s.idleSeconds));
      const b = tr.querySelector("button.end");
      if (b) b.setAttribute("aria-label", "End session " + key + " (" + (s.userAgent || "no user agent") + ")");
      // Keep the server's order (oldest login first).
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const [key, tr] of existing) {
      if (!seen.has(key)) tr.remove();
    }
    show(emptyEl, sessions.length === 0);
    show(tbody.closest("table"), sessions.length > 0);
  }

  async function refresh() {
    if (!me || refreshing) return;
    refreshing = true;
    try {
      const mine = await api("GET", "/ui/api/sessions?scope=mine");
      renderTable($("mine-body"), $("mine-empty"), mine.sessions, false);
      $("mine-status").textContent = mine.count + (mine.count === 1 ? " session" : " sessions") + " · updated " + clockText();
      if (me && me.admin) {
        const all = await api("GET", "/ui/api/sessions?scope=all");
        renderTable($("all-body"), $("all-empty"), all.sessions, true);
        $("all-status").textContent = all.count + (all.count === 1 ? " session" : " sessions") + " · updated " + clockText();
      }
      const m = await api("GET", "/ui/api/message");
      const banner = $("banner");
      banner.textContent = m.message ? "Service message: " + m.message : "";
      show(banner, Boolean(m.message));
      appError("");
    } catch (e) {
      if (e instanceof HttpError && e.status === 401) {
        showSignIn("Your sign-in has expired. Please sign in again.");
      } else {
        appError("Cannot refresh: " + e.message);
      }
    } finally {
      refreshing = false;
    }
  }

  function startRefresh() {
    stopRefresh();
    timer = window.setInterval(refresh, REFRESH_MS);
  }

  function stopRefresh() {
    if (timer !== null) window.clearInterval(timer);
    timer = null;
  }

  async function endSession(key, button) {
    button.disabled = true;
    button.textContent = "Ending…";
    try {
      await api("DELETE", "/ui/api/sessions/" + encodeURIComponent(key));
      for (const tr of document.querySelectorAll("tr[data-key]")) {
        if (tr.dataset.key === key) tr.remove();
      }
      $("mine-status").textContent = "Session ended · " + clockText();
    } catch (e) {
      if (e instanceof HttpError && e.status === 401) {
        showSignIn("Your sign-in has expired. Please sign in again.");
        return;
      }
      appError("Cannot end the session: " + e.message);
      button.disabled = false;
      button.textContent = "End session";
    }
    refresh();
  }

  // ---- service message --------------------------------------------------------------

  async function loadMessageEditor() {
    try {
      const m = await api("GET", "/ui/api/message");
      $("message-text").value = m.message || "";
      $("message-status").textContent = "";
    } catch (e) {
      $("message-status").textContent = "Cannot load: " + e.message;
    }
  }

  async function saveMessage(text) {
    const status = $("message-status");
    status.textContent = "Saving…";
    try {
      await api("PUT", "/ui/api/message", { message: text });
      $("message-text").value = text;
      status.textContent = (text ? "Saved" : "Cleared") + " · " + clockText();
      refresh();
    } catch (e) {
      status.textContent = "Not saved: " + e.message;
    }
  }

  // ---- sign-in and sign-out ---------------------------------------------------------

  async function signIn(ev) {
    ev.preventDefault();
    const button = $("sign-in-button");
    button.disabled = true;
    show($("sign-in-error"), false);
    try {
      me = await api("POST", "/ui/api/sign-in", {
        username: $("username").value,
        password: $("password").value,
      });
      $("password").value = "";
      showApp();
    } catch (e) {
      const msg = e instanceof HttpError && e.status === 401
        ? "Wrong user name or password."
        : e.message;
      showSignIn(msg);
    } finally {
      button.disabled = false;
    }
  }

  async function signOut() {
    try {
      await api("POST", "/ui/api/sign-out");
    } catch (_) {
      // Signed out already, or the server is gone: show the sign-in form either way.
    }
    for (const id of ["mine-body", "all-body"]) $(id).replaceChildren();
    $("banner").textContent = "";
    showSignIn("");
  }

  async function start() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("message-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      saveMessage($("message-text").value);
    });
    $("message-clear").addEventListener("click", () => saveMessage(""));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    try {
      const who = await api("GET", "/ui/api/me");
      if (who && who.signedIn) {
        me = who;
        showApp();
      } else {
        showSignIn("");
      }
    } catch (e) {
      showSignIn("Cannot reach the server: " + e.message);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
