// The console's script: signs in with a management JWT, lists, creates, edits, rolls and deletes
// the person's API keys through the public HTTP API, shows which were revoked (and, for a leaked
// one, where it was found), and shows the history of those changes. Every server string goes
// into the page as text (textContent), never as HTML; the CSP's Trusted Types make an HTML sink
// throw anyway.
"use strict";

(() => {
  // sessionStorage only: the token dies with the tab and is never sent anywhere but the API.
  const TOKEN_STORAGE = "api-keys.console.token";
  const LIST = "/v1/keys.list";
  const CREATE = "/v1/keys.create";
  const UPDATE = "/v1/keys.update";
  const ROLL = "/v1/keys.roll";
  const DELETE = "/v1/keys.delete";
  const EVENTS = "/v1/keys.events";

  const $ = (id) => document.getElementById(id);
  const el = {
    account: $("account"),
    accountSub: $("account-sub"),
    accountExpiry: $("account-expiry"),
    signOut: $("sign-out"),
    signIn: $("sign-in"),
    signInTitle: $("sign-in-title"),
    signInMessage: $("sign-in-message"),
    signInForm: $("sign-in-form"),
    token: $("token"),
    keysView: $("keys-view"),
    leaks: $("leaks"),
    keysTitle: $("keys-title"),
    generate: $("generate"),
    count: $("count"),
    limitNote: $("limit-note"),
    keysStatus: $("keys-status"),
    keysError: $("keys-error"),
    empty: $("empty"),
    keys: $("keys"),
    historyError: $("history-error"),
    historyEmpty: $("history-empty"),
    historyList: $("history-list"),
    createDialog: $("create-dialog"),
    createForm: $("create-form"),
    createName: $("create-name"),
    createScopes: $("create-scopes"),
    createScopesNone: $("create-scopes-none"),
    createExpires: $("create-expires"),
    createError: $("create-error"),
    createCancel: $("create-cancel"),
    createSubmit: $("create-submit"),
    secretDialog: $("secret-dialog"),
    secretValue: $("secret-value"),
    secretNote: $("secret-note"),
    copyStatus: $("copy-status"),
    secretCopy: $("secret-copy"),
    secretDone: $("secret-done"),
    editDialog: $("edit-dialog"),
    editForm: $("edit-form"),
    editCurrentName: $("edit-current-name"),
    editPreview: $("edit-preview"),
    editName: $("edit-name"),
    editScopes: $("edit-scopes"),
    editEnabled: $("edit-enabled"),
    editError: $("edit-error"),
    editCancel: $("edit-cancel"),
    editSubmit: $("edit-submit"),
    rollDialog: $("roll-dialog"),
    rollForm: $("roll-form"),
    rollName: $("roll-name"),
    rollPreview: $("roll-preview"),
    rollGrace: $("roll-grace"),
    rollError: $("roll-error"),
    rollCancel: $("roll-cancel"),
    rollSubmit: $("roll-submit"),
    deleteDialog: $("delete-dialog"),
    deleteTitle: $("delete-title"),
    deleteAsk: $("delete-ask"),
    deleteName: $("delete-name"),
    deleteEffect: $("delete-effect"),
    deleteError: $("delete-error"),
    deleteCancel: $("delete-cancel"),
    deleteConfirm: $("delete-confirm"),
    switchDialog: $("switch-dialog"),
    switchCurrent: $("switch-current"),
    switchNew: $("switch-new"),
    switchStay: $("switch-stay"),
    switchConfirm: $("switch-confirm"),
  };

  const state = {
    token: null,
    claims: null, // the token's claims, decoded for display only
    list: null, // the last list answer
    events: null, // the last events answer's events
    secret: null, // the new key, only while its dialog is open
    secretHiddenOnLeaving: false, // the page was left with a new key shown (see pagehide)
    editing: null, // the key the edit dialog is about, as the list showed it
    rolling: null, // the key the roll dialog is about
    deleting: null, // the key the confirmation is about
    offered: null, // a link's token for another account, until the person decides (see offerToken)
    outerReturnFocus: null, // where focus goes after a dialog the switch dialog opened over
    returnFocus: null,
    session: 0, // one more at every sign-in and sign-out: an answer for an earlier one is dropped
  };

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  /** An error of the API: its status, stable code and the message for humans. */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Calls the API as the signed-in person; answers the JSON body or throws an ApiError. */
  async function api(method, path, body) {
    const init = {
      method,
      headers: { Authorization: `Bearer ${state.token}` },
      cache: "no-store",
      credentials: "omit",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network_error", "Could not reach the API. Check the connection and try again.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (response.ok && data !== null) {
      return data;
    }
    const error = data !== null && typeof data.error === "object" && data.error !== null ? data.error : {};
    const code = typeof error.code === "string" ? error.code : `http_${response.status}`;
    const message =
      typeof error.message === "string" && error.message !== ""
        ? error.message
        : `The API answered ${response.status} without an explanation.`;
    throw new ApiError(response.status, code, message);
  }

  /**
   * Shows `error` in `where`, or, for a 401, ends the session: the token is expired, revoked or
   * not one this server accepts, and every further call would fail the same way.
   */
  function report(error, where) {
    if (error instanceof ApiError && error.status === 401) {
      const expired = typeof state.claims?.exp === "number" && state.claims.exp * 1000 < Date.now();
      const why = expired ? "Your token has expired, so you were signed out." : "You were signed out: the API did not accept your token.";
      signOut(`${why} The API answered: “${error.message}” Sign in again with a new token.`);
      return;
    }
    const text = error instanceof ApiError ? `${error.message} (${error.code})` : `Something went wrong: ${error}`;
    where.textContent = text;
  }

  /** The claims of a JWT, decoded for display only (the API checks the signature); or null. */
  function claimsOf(token) {
    const parts = token.split(".");
    if (parts.length !== 3) {
      return null;
    }
    try {
      const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
      const padded = base64 + "===".slice((base64.length + 3) % 4);
      const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims !== null && typeof claims === "object" ? claims : null;
    } catch {
      return null;
    }
  }

  /** A `<time>` for an RFC 3339 timestamp, shown in the reader's locale and time zone. */
  function timeElement(iso) {
    const time = document.createElement("time");
    time.dateTime = iso;
    const date = new Date(iso);
    time.textContent = Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
    return time;
  }

  // ---- Signing in and out ---------------------------------------------------------------------

  /** The token of a `#token=…` fragment, removed from the address bar (and history) at once. */
  function takeTokenFromFragment() {
    if (!location.hash.startsWith("#")) {
      return null;
    }
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    if (token === null) {
      return null;
    }
    history.replaceState(null, "", location.pathname + location.search);
    return token.trim() || null;
  }

  /**
   * Forgets everything of the signed-in person the page holds: every dialog closed and emptied
   * (a new key's secret first, at once rather than when the close event comes), whose account it
   * is, the list, the history and every message about their keys. After sign-out (or switching
   * to another account) nothing of theirs is left in the page.
   */
  function forgetAccount() {
    forgetSecret();
    state.offered = null;
    for (const dialog of [el.createDialog, el.secretDialog, el.editDialog, el.rollDialog, el.deleteDialog, el.switchDialog]) {
      if (dialog.open) {
        dialog.close();
      }
    }
    state.session += 1;
    state.token = null;
    state.claims = null;
    state.list = null;
    state.events = null;
    state.editing = null;
    state.rolling = null;
    state.deleting = null;
    state.outerReturnFocus = null;
    state.returnFocus = null;
    el.accountSub.textContent = "";
    el.accountExpiry.replaceChildren();
    el.generate.disabled = true;
    el.count.textContent = "";
    el.limitNote.hidden = true;
    el.limitNote.textContent = "";
    el.keysStatus.textContent = "";
    el.keysError.textContent = "";
    el.leaks.replaceChildren();
    el.empty.hidden = true;
    el.keys.replaceChildren();
    el.historyList.replaceChildren();
    el.historyEmpty.hidden = true;
    el.historyError.textContent = "";
    el.createForm.reset();
    el.createScopes.replaceChildren();
    el.createError.textContent = "";
    el.editForm.reset();
    el.editCurrentName.textContent = "";
    el.editPreview.textContent = "";
    el.editScopes.replaceChildren();
    el.editError.textContent = "";
    el.rollForm.reset();
    el.rollName.textContent = "";
    el.rollPreview.textContent = "";
    el.rollError.textContent = "";
    el.deleteName.textContent = "";
    el.deleteError.textContent = "";
    el.switchCurrent.textContent = "";
    el.switchNew.textContent = "";
  }

  function showSignIn(message) {
    forgetAccount();
    el.account.hidden = true;
    el.keysView.hidden = true;
    el.signIn.hidden = false;
    el.signInMessage.textContent = message;
    el.token.value = "";
    el.token.focus();
  }

  /** The account (`sub`) that claims are for; null if they name none. */
  function accountOf(claims) {
    return typeof claims?.sub === "string" ? claims.sub : null;
  }

  /** The account as the page names it: its `sub`, or a note that the token names none. */
  function accountName(claims) {
    return accountOf(claims) ?? "(no user in the token)";
  }

  /** Takes `token` as the session's; whose it is and when it expires go into the header. */
  function useToken(token, claims) {
    state.token = token;
    state.claims = claims;
    sessionStorage.setItem(TOKEN_STORAGE, token);
    el.accountSub.textContent = accountName(claims);
    el.accountExpiry.replaceChildren();
    if (typeof claims.exp === "number") {
      const expires = new Date(claims.exp * 1000);
      el.accountExpiry.append(expires > new Date() ? "Token expires " : "Token expired ", timeElement(expires.toISOString()));
    }
  }

  /** Signs in with `token`, starting from nothing: no dialog, key or message of anyone before. */
  function signIn(token) {
    const claims = claimsOf(token);
    if (claims === null) {
      sessionStorage.removeItem(TOKEN_STORAGE);
      showSignIn("That is not a management token: a JWT has three parts separated by dots.");
      return;
    }
    forgetAccount();
    state.session += 1;
    useToken(token, claims);
    el.signIn.hidden = true;
    el.signInMessage.textContent = "";
    el.account.hidden = false;
    el.keysView.hidden = false;
    el.count.textContent = "Loading your keys…";
    el.keysTitle.focus();
    refresh();
  }

  /**
   * A `#token=` that arrives while the page is open (a link followed in this tab). Anyone can
   * make such a link with their own token, and a person who followed it unawares would then
   * generate keys in the link maker's account (login CSRF). So a token for another account than
   * the signed-in one is only used if the person says so; one for the same account (a fresher
   * token) replaces the old without a word. The page cannot check a token's signature, only
   * read its `sub`: that decides which account the page talks to, and the API checks the rest.
   */
  function offerToken(token) {
    if (state.token === null) {
      signIn(token);
      return;
    }
    const claims = claimsOf(token);
    if (claims === null) {
      el.keysError.textContent =
        `The link's token was not used: it is not a management token. You are still signed in as ${accountName(state.claims)}.`;
      return;
    }
    if (accountOf(claims) !== null && accountOf(claims) === accountOf(state.claims)) {
      useToken(token, claims);
      refresh();
      return;
    }
    askSwitch(token, claims);
  }

  /** The switch dialog: the two accounts named, focus on staying, which is what Escape does. */
  function askSwitch(token, claims) {
    state.offered = token;
    el.switchCurrent.textContent = accountName(state.claims);
    el.switchNew.textContent = accountName(claims);
    if (el.switchDialog.open) {
      el.switchStay.focus(); // a second link while the first is asked about: this one is asked
      return;
    }
    // Opened over another dialog (a link followed from the address bar), focus goes back into
    // that one now, and to where that one was opened from when it closes.
    const outer = state.returnFocus;
    openDialog(el.switchDialog, el.switchStay);
    state.outerReturnFocus = outer;
  }

  /** The person stays as they are: the link's token is dropped, and they are told so. */
  function keepSession() {
    if (state.offered === null) {
      return;
    }
    state.offered = null;
    el.switchNew.textContent = "";
    el.keysStatus.textContent = `You are still signed in as ${accountName(state.claims)}; the link's token was not used.`;
  }

  /** The person chose the link's account: nothing of the current one stays in the page. */
  function confirmSwitch() {
    const token = state.offered;
    if (token === null) {
      return;
    }
    signIn(token); // forgets the current account first, this dialog included
  }

  /** Ends the session; `showSignIn` forgets the person's every dialog, secret and key. */
  function signOut(message) {
    sessionStorage.removeItem(TOKEN_STORAGE);
    showSignIn(message);
  }

  // ---- The list -------------------------------------------------------------------------------

  /** Reloads the list and the history together (after signing in and after every change). */
  async function refresh() {
    await Promise.all([refreshList(), refreshHistory()]);
  }

  async function refreshList() {
    const token = state.token;
    try {
      const list = await api("GET", LIST);
      if (state.token !== token) {
        return; // signed out (or in as someone else) meanwhile
      }
      state.list = list;
      renderList();
    } catch (error) {
      if (state.token !== token) {
        return; // the other request of this refresh already ended the session
      }
      el.count.textContent = "";
      report(error, el.keysError);
    }
  }

  function renderList() {
    const { keys, count, limit } = state.list;
    el.count.textContent = `${count} of ${limit} keys`;
    const full = count >= limit;
    el.generate.disabled = full;
    el.limitNote.hidden = !full;
    el.limitNote.textContent = full
      ? `You have ${count} keys, the most allowed (${limit}). Delete a key to generate a new one.`
      : "";
    el.empty.hidden = keys.length > 0;
    // A control of the list that has focus keeps it across the redraw (e.g. "Edit" after a save,
    // even when the key's name, and so the button's name, changed).
    const focused = el.keys.contains(document.activeElement) ? document.activeElement : null;
    el.keys.replaceChildren(...keys.map(keyItem));
    if (focused !== null) {
      keyButtonLike(focused)?.focus();
    }
    renderLeaks(keys.filter((key) => revocationOf(key)?.reason === "leaked"));
  }

  /**
   * The banner over the list while any key is revoked because it leaked: which, where it was
   * found, and what to do. It is an alert region, so it is redrawn only when what it says
   * changes: a refresh that finds the same leaks does not announce them again.
   */
  function renderLeaks(leaked) {
    const banner = document.createElement("div");
    if (leaked.length > 0) {
      const title = document.createElement("p");
      title.className = "leaks-title";
      title.textContent = leaked.length === 1
        ? "A key of yours was found in public and revoked"
        : `${leaked.length} keys of yours were found in public and revoked`;
      const list = document.createElement("ul");
      for (const key of leaked) {
        const { url, at } = revocationOf(key);
        const name = document.createElement("strong");
        name.className = "leak-name";
        name.textContent = key.name;
        const line = document.createElement("li");
        line.append("“", name, "” was found ");
        line.append(...(typeof url === "string" && url !== "" ? ["at ", place(url)] : ["in public"]));
        line.append(" and revoked ", timeElement(at), ". It no longer works.");
        list.append(line);
      }
      const advice = document.createElement("p");
      advice.textContent = "Generate a new key, put it in place of the revoked one in whatever " +
        "service, gateway or script uses it, then remove the revoked key here.";
      banner.append(title, list, advice);
    }
    if (banner.textContent !== el.leaks.textContent) {
      el.leaks.replaceChildren(...banner.childNodes);
    }
  }

  /** The key's revocation (`{reason, at, url, source}`), or null while it is live. */
  function revocationOf(key) {
    return key.revoked !== null && typeof key.revoked === "object" ? key.revoked : null;
  }

  /** Why a key was revoked, in words. */
  function revocationWords(revoked) {
    if (revoked.reason === "leaked") {
      return `Leaked — found in public${sourceWords(revoked.source)}`;
    }
    return revoked.reason === "self" ? "Revoked by its holder" : `Revoked (${revoked.reason})`;
  }

  /** The kind of place a scanner found a key in, as " (pull request comment)"; or "". */
  function sourceWords(source) {
    return typeof source === "string" && source !== "" ? ` (${source.replace(/_/g, " ")})` : "";
  }

  /**
   * Where a leaked key was found: a link if the scanner's URL is a web address, else the text
   * as it came (never a `javascript:` or other link). The page's `no-referrer` policy applies.
   */
  function place(url) {
    if (!/^https?:\/\//i.test(url)) {
      const text = document.createElement("code");
      text.textContent = url;
      return text;
    }
    const link = document.createElement("a");
    link.setAttribute("href", url);
    link.setAttribute("rel", "noopener noreferrer");
    link.textContent = url;
    return link;
  }

  /** The list's button for the same action on the same key as `button` (of an earlier drawing). */
  function keyButtonLike(button) {
    const { action, keyId } = button.dataset;
    if (!action || !keyId) {
      return null;
    }
    return [...el.keys.querySelectorAll("button")].find(
      (again) => again.dataset.action === action && again.dataset.keyId === keyId,
    ) ?? null;
  }

  // ---- The history ----------------------------------------------------------------------------

  async function refreshHistory() {
    const token = state.token;
    try {
      const answer = await api("GET", EVENTS);
      if (state.token !== token) {
        return;
      }
      state.events = Array.isArray(answer.events) ? answer.events : [];
      el.historyError.textContent = "";
      renderHistory();
    } catch (error) {
      if (state.token !== token) {
        return;
      }
      report(error, el.historyError);
    }
  }

  function renderHistory() {
    const events = state.events;
    el.historyEmpty.hidden = events.length > 0;
    el.historyList.replaceChildren(...events.map(eventItem));
  }

  const EVENT_WORDS = { created: "Created", updated: "Updated", rolled: "Rolled", revoked: "Revoked", deleted: "Deleted" };
  // Reasons that read better in other words: "Revoked (by its holder)".
  const REASON_WORDS = { self: "by its holder" };
  // The fields of an update, in the order the edit dialog shows them; any other after these.
  const CHANGE_ORDER = ["name", "scopes", "enabled"];

  /** What an event did, in words: "Created", "Deleted (expired)", ... */
  function eventWhat(event) {
    const word = EVENT_WORDS[event.type] ?? String(event.type);
    return typeof event.reason === "string" && event.reason !== ""
      ? `${word} (${REASON_WORDS[event.reason] ?? event.reason})`
      : word;
  }

  /** A changed setting's value as the page shows it: scopes as a list, enabled as yes or no. */
  function changeValue(value) {
    if (Array.isArray(value)) {
      return value.length > 0 ? value.join(", ") : "none";
    }
    if (typeof value === "boolean") {
      return value ? "yes" : "no";
    }
    if (value === null || value === undefined) {
      return "none";
    }
    return String(value);
  }

  function eventItem(event) {
    const item = document.createElement("li");
    item.className = "event";
    const head = document.createElement("p");
    head.className = "event-head";
    const what = document.createElement("strong");
    what.className = "event-what";
    what.textContent = eventWhat(event);
    const name = document.createElement("span");
    name.className = "event-name";
    name.textContent = typeof event.name === "string" ? event.name : "";
    const when = timeElement(event.at);
    when.className = "event-when";
    head.append(when, " ", what, " “", name, "”");
    item.append(head);
    if (event.type === "rolled" && typeof event.previous_key_expires_at === "string") {
      item.append(rollDetail(event));
    }
    if (event.type === "revoked" && typeof event.secret_preview === "string") {
      const detail = document.createElement("p");
      detail.className = "event-detail";
      detail.textContent = `only its older secret ${event.secret_preview} was revoked; the key works with its current secret`;
      item.append(detail);
    }
    if (event.type === "revoked" && typeof event.url === "string" && event.url !== "") {
      const detail = document.createElement("p");
      detail.className = "event-detail";
      detail.append("found at ", place(event.url), sourceWords(event.source));
      item.append(detail);
    }
    if (event.type === "deleted" && event.reason === "revoked") {
      const detail = document.createElement("p");
      detail.className = "event-detail";
      detail.textContent = "a revoked key, let go to make room for a new one";
      item.append(detail);
    }
    const changes = event.changes !== null && typeof event.changes === "object" ? event.changes : {};
    const fields = Object.keys(changes).sort((a, b) => {
      const rank = (field) => (CHANGE_ORDER.includes(field) ? CHANGE_ORDER.indexOf(field) : CHANGE_ORDER.length);
      return rank(a) - rank(b);
    });
    if (fields.length > 0) {
      const list = document.createElement("ul");
      list.className = "event-changes";
      for (const field of fields) {
        const change = changes[field] ?? {};
        const line = document.createElement("li");
        line.textContent = `${field}: ${changeValue(change.from)} → ${changeValue(change.to)}`;
        list.append(line);
      }
      item.append(list);
    }
    return item;
  }

  /**
   * What a roll did to the secret it replaced: it works until its grace ends, or (no grace: the
   * grace end is the roll's own time) it stopped at once.
   */
  function rollDetail(event) {
    const detail = document.createElement("p");
    detail.className = "event-detail";
    const ends = new Date(event.previous_key_expires_at).getTime();
    if (ends === new Date(event.at).getTime()) {
      detail.textContent = "old key stopped at once";
    } else {
      detail.append("old key until ", timeElement(event.previous_key_expires_at));
    }
    return detail;
  }

  /** Whether the key's `expires_at` has come. */
  function isExpired(key) {
    return typeof key.expires_at === "string" && new Date(key.expires_at) <= new Date();
  }

  /** A button of a key's row; `action` and the key's id let the list find it again. */
  function keyButton(key, action, text, className, onClick) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = className;
    button.textContent = text;
    button.setAttribute("aria-label", `${text} ${key.name}`);
    button.dataset.action = action;
    button.dataset.keyId = key.id;
    button.addEventListener("click", onClick);
    return button;
  }

  function keyItem(key) {
    // A revoked key never verifies again, whatever else holds: that is the one thing it shows.
    const revoked = revocationOf(key);
    const disabled = revoked === null && key.enabled === false;
    const expired = revoked === null && isExpired(key);
    const item = document.createElement("li");
    item.className = "key";
    item.classList.toggle("key-off", revoked !== null || disabled || expired);
    const head = document.createElement("div");
    head.className = "key-head";
    const title = document.createElement("div");
    title.className = "key-title";
    const name = document.createElement("h2");
    name.className = "key-name";
    name.textContent = key.name;
    title.append(name);
    // A key that cannot verify says so next to its name, not only in its facts.
    for (const [off, text] of [[revoked !== null, "Revoked"], [disabled, "Disabled"], [expired, "Expired"]]) {
      if (off) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = text;
        title.append(badge);
      }
    }
    const actions = document.createElement("div");
    actions.className = "key-actions";
    // A revoked key can be neither edited nor rolled (the API refuses both), only removed.
    if (revoked === null) {
      actions.append(
        keyButton(key, "edit", "Edit", "secondary", () => openEdit(key)),
        keyButton(key, "roll", "Roll", "secondary", () => openRoll(key)),
      );
    }
    actions.append(keyButton(key, "delete", revoked === null ? "Delete" : "Remove", "delete", () => askDelete(key)));
    head.append(title, actions);

    const facts = document.createElement("dl");
    facts.className = "key-facts";
    const fact = (label, ...content) => {
      const term = document.createElement("dt");
      term.textContent = label;
      const value = document.createElement("dd");
      value.append(...content);
      facts.append(term, value);
    };
    const status = document.createElement("span");
    status.className = revoked !== null || disabled ? "status-off" : "status-on";
    status.textContent = revoked !== null ? "Revoked" : disabled ? "Disabled" : "Enabled";
    fact("Status", status);
    if (revoked !== null) {
      fact("Revoked", `${revocationWords(revoked)}, `, timeElement(revoked.at));
      if (typeof revoked.url === "string" && revoked.url !== "") {
        fact("Found at", place(revoked.url));
      }
    }
    fact("Scopes", ...key.scopes.map((scope) => {
      const chip = document.createElement("span");
      chip.className = "scope";
      chip.textContent = scope;
      return chip;
    }));
    const preview = document.createElement("code");
    preview.textContent = key.preview;
    const secrets = [preview];
    // A rolled key's old secret in its grace period: until when whatever still uses it works.
    if (typeof key.previous_key_expires_at === "string") {
      const old = document.createElement("span");
      old.className = "old-key";
      old.append("Old key works until ", timeElement(key.previous_key_expires_at));
      secrets.push(old);
    }
    fact("Key", ...secrets);
    fact("Created", timeElement(key.created_at));
    fact("Last used", key.last_used_at ? timeElement(key.last_used_at) : "Never");
    fact(expired ? "Expired" : "Expires", key.expires_at ? timeElement(key.expires_at) : "Never");
    item.append(head, facts);
    return item;
  }

  // ---- Dialogs --------------------------------------------------------------------------------

  function openDialog(dialog, focus) {
    state.returnFocus = document.activeElement;
    dialog.showModal();
    focus.focus();
  }

  /**
   * Puts focus back where the dialog was opened from — that key's button as the list is drawn
   * now, if it was redrawn meanwhile (a roll's secret dialog stays open across a refresh) — or on
   * the page's heading.
   */
  function restoreFocus() {
    let back = state.returnFocus;
    state.returnFocus = null;
    if (back instanceof HTMLElement && !back.isConnected) {
      back = keyButtonLike(back);
    }
    if (back instanceof HTMLElement && back.isConnected && !back.disabled && !el.keysView.hidden) {
      back.focus();
    } else if (!el.keysView.hidden) {
      el.keysTitle.focus();
    }
  }

  /** The scopes the server allows, as its list answer says. */
  function allowedScopes() {
    return Array.isArray(state.list?.allowed_scopes) ? state.list.allowed_scopes : [];
  }

  /** One labelled checkbox per scope into `container`, those in `checked` ticked. */
  function scopeChoices(container, idPrefix, scopes, checked) {
    container.replaceChildren(
      ...scopes.map((scope, i) => {
        const label = document.createElement("label");
        label.className = "scope-choice";
        const box = document.createElement("input");
        box.type = "checkbox";
        box.name = "scope";
        box.value = scope;
        box.id = `${idPrefix}-${i}`;
        box.checked = checked.includes(scope);
        label.htmlFor = box.id;
        label.append(box, scope);
        return label;
      }),
    );
  }

  function checkedScopes(container) {
    return [...container.querySelectorAll("input:checked")].map((box) => box.value);
  }

  /** `date` as a `datetime-local` value: the reader's local time, to the minute. */
  function localInputValue(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
      `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  function openCreate() {
    el.createForm.reset();
    el.createError.textContent = "";
    el.createSubmit.disabled = false;
    const scopes = allowedScopes();
    el.createScopesNone.hidden = scopes.length > 0;
    scopeChoices(el.createScopes, "scope", scopes, []);
    // Hints for the date picker only; the server decides (in the future, at most ten years ahead).
    const now = new Date();
    el.createExpires.min = localInputValue(now);
    el.createExpires.max = localInputValue(new Date(now.getTime() + 3650 * 24 * 3600 * 1000));
    openDialog(el.createDialog, el.createName);
  }

  /**
   * The create dialog's expiry as the API takes it: null when empty (never expires), else the
   * local date and time as an RFC 3339 UTC string; throws when the field holds a partial date.
   */
  function expiresAtOf(input) {
    if (input.validity.badInput) {
      throw new ApiError(0, "invalid_expires_at", "Enter a complete date and time for the expiry, or clear it for a key that never expires.");
    }
    if (input.value === "") {
      return null;
    }
    // A datetime-local value has no offset, so Date reads it as the reader's local time.
    const date = new Date(input.value);
    if (Number.isNaN(date.getTime())) {
      throw new ApiError(0, "invalid_expires_at", "The expiry is not a date and time this page understands.");
    }
    return date.toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  async function submitCreate(event) {
    event.preventDefault();
    if (el.createSubmit.disabled) {
      return;
    }
    const scopes = checkedScopes(el.createScopes);
    const session = state.session;
    el.createError.textContent = "";
    el.createSubmit.disabled = true;
    try {
      const request = { name: el.createName.value, scopes };
      const expiresAt = expiresAtOf(el.createExpires);
      if (expiresAt !== null) {
        request.expires_at = expiresAt;
      }
      const created = await api("POST", CREATE, request);
      if (state.session !== session) {
        return; // signed out meanwhile: the new key is not shown over the sign-in screen
      }
      el.createDialog.close();
      showSecret(created.key);
      refresh();
    } catch (error) {
      if (state.session !== session) {
        return;
      }
      report(error, el.createError);
      if (error instanceof ApiError && error.code === "key_limit_reached") {
        refresh(); // the count changed elsewhere: the page shows the limit when this closes
      }
    } finally {
      el.createSubmit.disabled = false;
    }
  }

  /**
   * Shows a new secret once, in place of the dialog that asked for it (create or roll), with an
   * optional `note` under it (text).
   */
  function showSecret(secret, note = "") {
    state.secret = secret;
    el.secretValue.textContent = secret;
    el.secretNote.textContent = note;
    el.secretNote.hidden = note === "";
    el.copyStatus.textContent = "";
    // Focus goes back to the button that opened the asking dialog, not to that closed dialog.
    const back = state.returnFocus;
    openDialog(el.secretDialog, el.secretCopy);
    state.returnFocus = back;
  }

  /**
   * The secret leaves the page with its dialog, however it closes. Done and Escape (`cancel`)
   * forget it before the dialog closes: the `close` event comes a task later, and the secret
   * must not stay in a closed dialog meanwhile.
   */
  function forgetSecret() {
    state.secret = null;
    el.secretValue.textContent = "";
    el.secretNote.textContent = "";
    el.secretNote.hidden = true;
    el.copyStatus.textContent = "";
    window.getSelection()?.removeAllRanges();
  }

  async function copySecret() {
    if (state.secret === null) {
      return;
    }
    try {
      await navigator.clipboard.writeText(state.secret);
      el.copyStatus.textContent = "Copied to the clipboard.";
    } catch {
      // No clipboard access (permission, insecure origin): select it for the person to copy.
      const range = document.createRange();
      range.selectNodeContents(el.secretValue);
      const selection = window.getSelection();
      selection?.removeAllRanges();
      selection?.addRange(range);
      el.copyStatus.textContent = "Could not copy automatically: the key is selected, press Ctrl+C (⌘C on a Mac).";
    }
  }

  function openEdit(key) {
    state.editing = key;
    el.editForm.reset();
    el.editError.textContent = "";
    el.editSubmit.disabled = false;
    el.editCurrentName.textContent = key.name;
    el.editPreview.textContent = key.preview;
    el.editName.value = key.name;
    // A scope the key holds but the server no longer offers stays visible, so that saving other
    // settings never drops it silently.
    const scopes = [...allowedScopes()];
    for (const scope of key.scopes) {
      if (!scopes.includes(scope)) {
        scopes.push(scope);
      }
    }
    scopeChoices(el.editScopes, "edit-scope", scopes, key.scopes);
    el.editEnabled.checked = key.enabled !== false;
    openDialog(el.editDialog, el.editName);
  }

  /** The settings of the edit dialog that differ from the key as listed: what update is sent. */
  function editChanges(key) {
    const changes = {};
    if (el.editName.value !== key.name) {
      changes.name = el.editName.value;
    }
    const scopes = checkedScopes(el.editScopes);
    const same = scopes.length === key.scopes.length && scopes.every((scope) => key.scopes.includes(scope));
    if (!same) {
      changes.scopes = scopes;
    }
    if (el.editEnabled.checked !== (key.enabled !== false)) {
      changes.enabled = el.editEnabled.checked;
    }
    return changes;
  }

  async function submitEdit(event) {
    event.preventDefault();
    const key = state.editing;
    if (key === null || el.editSubmit.disabled) {
      return;
    }
    el.editError.textContent = "";
    const changes = editChanges(key);
    if (Object.keys(changes).length === 0) {
      el.editDialog.close();
      el.keysStatus.textContent = `Nothing to save: “${key.name}” is unchanged.`;
      return;
    }
    el.editSubmit.disabled = true;
    const session = state.session;
    try {
      const updated = await api("POST", UPDATE, { id: key.id, ...changes });
      if (state.session !== session) {
        return;
      }
      el.editDialog.close();
      el.keysStatus.textContent = `Saved “${updated.name}”.`;
      await refresh();
    } catch (error) {
      if (state.session !== session) {
        return;
      }
      report(error, el.editError);
      if (error instanceof ApiError && error.code === "key_not_found") {
        refresh(); // deleted elsewhere meanwhile
      }
    } finally {
      el.editSubmit.disabled = false;
    }
  }

  function openRoll(key) {
    state.rolling = key;
    el.rollForm.reset(); // the grace back to its default, 24 hours
    el.rollError.textContent = "";
    el.rollSubmit.disabled = false;
    el.rollName.textContent = key.name;
    el.rollPreview.textContent = key.preview;
    openDialog(el.rollDialog, el.rollGrace);
  }

  async function submitRoll(event) {
    event.preventDefault();
    const key = state.rolling;
    if (key === null || el.rollSubmit.disabled) {
      return;
    }
    el.rollError.textContent = "";
    el.rollSubmit.disabled = true;
    const grace = el.rollGrace.selectedOptions[0];
    const session = state.session;
    try {
      const rolled = await api("POST", ROLL, { id: key.id, grace_seconds: Number(grace.value) });
      if (state.session !== session) {
        return; // signed out meanwhile: the new secret is not shown over the sign-in screen
      }
      el.rollDialog.close();
      el.keysStatus.textContent = `Rolled “${rolled.name}”.`;
      showSecret(
        rolled.key,
        grace.value === "0"
          ? `It replaces the key ${key.preview}, which stopped working at once.`
          : `It replaces the key ${key.preview}, which keeps working for ${grace.text}.`,
      );
      refresh();
    } catch (error) {
      if (state.session !== session) {
        return;
      }
      report(error, el.rollError);
      if (error instanceof ApiError && error.code === "key_not_found") {
        refresh(); // deleted elsewhere meanwhile
      }
    } finally {
      el.rollSubmit.disabled = false;
    }
  }

  /** The confirmation; for a revoked key, which no longer works, it asks to remove it. */
  function askDelete(key) {
    const revoked = revocationOf(key) !== null;
    state.deleting = key;
    el.deleteTitle.textContent = revoked ? "Remove revoked key" : "Delete API key";
    el.deleteAsk.textContent = revoked ? "Remove the revoked key" : "Delete the key";
    el.deleteEffect.textContent = revoked
      ? "It no longer works, and is gone from this list once removed."
      : "Whatever uses it stops working at once.";
    el.deleteConfirm.textContent = revoked ? "Remove key" : "Delete key";
    el.deleteName.textContent = key.name;
    el.deleteError.textContent = "";
    el.deleteConfirm.disabled = false;
    openDialog(el.deleteDialog, el.deleteCancel);
  }

  async function confirmDelete() {
    const key = state.deleting;
    if (key === null || el.deleteConfirm.disabled) {
      return;
    }
    el.deleteError.textContent = "";
    el.deleteConfirm.disabled = true;
    const session = state.session;
    try {
      await api("POST", DELETE, { id: key.id });
      if (state.session !== session) {
        return;
      }
      el.deleteDialog.close();
      el.keysStatus.textContent = `${revocationOf(key) === null ? "Deleted" : "Removed"} “${key.name}”.`;
      await refresh();
    } catch (error) {
      if (state.session !== session) {
        return;
      }
      report(error, el.deleteError);
      if (error instanceof ApiError && error.code === "key_not_found") {
        refresh(); // deleted elsewhere meanwhile
      }
    } finally {
      el.deleteConfirm.disabled = false;
    }
  }

  // ---- Wiring ---------------------------------------------------------------------------------

  /**
   * Runs `then` when `dialog` has closed. The close event comes a task after the closing, and a
   * key press can come first (Escape, then Enter on the same button at once): an event for a
   * dialog open again by then is stale and must not forget what the new opening set up.
   */
  function whenClosed(dialog, then) {
    dialog.addEventListener("close", () => {
      if (!dialog.open) {
        then();
      }
    });
  }

  /**
   * Focus back after a dialog that ends in a secret (create, roll): on success the secret dialog
   * is open by the time the close event comes, and takes over where focus goes back to.
   */
  function restoreFocusUnlessSecret() {
    if (!el.secretDialog.open) {
      restoreFocus();
    }
  }

  el.signInForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = el.token.value.trim();
    if (token === "") {
      el.signInMessage.textContent = "Paste a management token first.";
      el.token.focus();
      return;
    }
    signIn(token);
  });
  el.signOut.addEventListener("click", () => signOut("You signed out."));
  el.generate.addEventListener("click", openCreate);
  el.createForm.addEventListener("submit", submitCreate);
  el.createCancel.addEventListener("click", () => el.createDialog.close());
  whenClosed(el.createDialog, restoreFocusUnlessSecret);
  el.secretCopy.addEventListener("click", copySecret);
  el.secretDone.addEventListener("click", () => {
    forgetSecret();
    el.secretDialog.close();
  });
  el.secretDialog.addEventListener("cancel", forgetSecret);
  whenClosed(el.secretDialog, () => {
    forgetSecret();
    restoreFocus();
  });
  el.editForm.addEventListener("submit", submitEdit);
  el.editCancel.addEventListener("click", () => el.editDialog.close());
  whenClosed(el.editDialog, () => {
    state.editing = null;
    restoreFocus();
  });
  el.rollForm.addEventListener("submit", submitRoll);
  el.rollCancel.addEventListener("click", () => el.rollDialog.close());
  whenClosed(el.rollDialog, () => {
    state.rolling = null;
    restoreFocusUnlessSecret();
  });
  el.deleteCancel.addEventListener("click", () => el.deleteDialog.close());
  el.deleteConfirm.addEventListener("click", confirmDelete);
  whenClosed(el.deleteDialog, () => {
    state.deleting = null;
    restoreFocus();
  });
  el.switchStay.addEventListener("click", () => {
    keepSession();
    el.switchDialog.close();
  });
  el.switchDialog.addEventListener("cancel", keepSession);
  el.switchConfirm.addEventListener("click", confirmSwitch);
  whenClosed(el.switchDialog, () => {
    keepSession();
    restoreFocus();
    state.returnFocus = state.outerReturnFocus;
    state.outerReturnFocus = null;
  });
  // A link with a `#token=` followed while the page is open changes only the fragment.
  window.addEventListener("hashchange", () => {
    const token = takeTokenFromFragment();
    if (token !== null) {
      offerToken(token);
    }
  });

  // ---- Leaving the page and coming back --------------------------------------------------------

  /**
   * The back-forward cache keeps a page that is left as it is, dialogs open and all, and shows it
   * again on Back; some Chrome versions do so even for a page served `Cache-Control: no-store`.
   * So the page forgets every secret when it is hidden: the new key (its dialog closes), a
   * token pasted but not yet submitted, and a link's token it was asking about (the person stays
   * signed in as they are). `pagehide` comes before the page is frozen, and on every way out
   * (navigation, Back, closing the tab).
   */
  window.addEventListener("pagehide", () => {
    if (state.secret !== null) {
      state.secretHiddenOnLeaving = true;
    }
    forgetSecret();
    keepSession();
    for (const dialog of [el.secretDialog, el.switchDialog]) {
      if (dialog.open) {
        dialog.close();
      }
    }
    el.token.value = "";
  });

  /**
   * Back in a page restored from the back-forward cache (`persisted`): nothing secret is shown
   * (`pagehide` saw to that), the person learns why the new key is gone, and the list, which may
   * have changed meanwhile, is loaded again.
   */
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) {
      return;
    }
    forgetSecret();
    const hidden = state.secretHiddenOnLeaving;
    state.secretHiddenOnLeaving = false;
    if (state.token === null) {
      return;
    }
    if (hidden) {
      el.keysStatus.textContent =
        "The new key was hidden when you left this page: it is shown only once. If you did not copy it, roll the key to get a new secret.";
    }
    refresh();
  });

  // Opened with a `#token=` while this tab is signed in (sessionStorage): the same question as
  // for a link followed while the page is open, unless the stored token is for the same account.
  const arrived = takeTokenFromFragment();
  const stored = sessionStorage.getItem(TOKEN_STORAGE);
  const storedClaims = stored === null ? null : claimsOf(stored);
  if (arrived === null && stored === null) {
    showSignIn("");
  } else if (arrived === null) {
    signIn(stored);
  } else if (storedClaims === null || (accountOf(storedClaims) !== null && accountOf(storedClaims) === accountOf(claimsOf(arrived)))) {
    signIn(arrived);
  } else {
    signIn(stored);
    offerToken(arrived);
  }
})();
