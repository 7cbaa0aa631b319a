// Caterva2 web UI: the actions of the pages, through the JSON API (no build step, no dependencies).
"use strict";
(function () {
  const $ = (sel, el = document) => el.querySelector(sel);
  const $$ = (sel, el = document) => Array.from(el.querySelectorAll(sel));
  // A user path as a URL path: each segment encoded, the separators kept
  const quote = (path) => path.split("/").map((s) => encodeURIComponent(s).replace(/%40/g, "@")).join("/");
  const MULTIPART_SLACK = 64 * 1024;

  function flash(message, isError) {
    const box = $("#flash");
    if (!box) return;
    box.textContent = message;  // text, never HTML: messages quote user paths
    box.className = isError ? "error" : "ok";
    box.hidden = false;
  }

  async function detailOf(resp) {
    try {
      const body = await resp.json();
      return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (e) {
      return resp.statusText;
    }
  }

  async function call(method, url, options = {}) {
    const resp = await fetch(url, { method, credentials: "same-origin", ...options });
    if (!resp.ok) throw new Error(`${resp.status}: ${await detailOf(resp)}`);
    return resp;
  }

  async function postJSON(url, body) {
    const resp = await call("POST", url, {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return resp.json();
  }

  // Only same-site paths may be a redirect target after login
  function safeNext(value) {
    return value && value.startsWith("/") && !value.startsWith("//") ? value : "/";
  }

  // ------------------------------------------------------------------ login / logout

  function setupLogin() {
    const form = $("#login-form");
    if (!form) return;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const err = $("#login-error");
      err.hidden = true;
      try {
        await call("POST", "/auth/jwt/login", { body: new URLSearchParams(new FormData(form)) });
        location.assign(safeNext(new URLSearchParams(location.search).get("next")));
      } catch (e) {
        err.textContent = e.message.includes("LOGIN_BAD_CREDENTIALS") ? "Wrong user or password." : e.message;
        err.hidden = false;
      }
    });
  }

  function setupLogout() {
    const button = $("#logout");
    if (!button) return;
    button.addEventListener("click", async () => {
      await call("POST", "/auth/jwt/logout");
      location.assign("/");
    });
  }

  // ------------------------------------------------------------------ tree filter

  function setupFilter() {
    const input = $("#tree-filter");
    if (!input) return;
    input.addEventListener("input", () => {
      const text = input.value.trim().toLowerCase();
      $$("li.file").forEach((li) => {
        li.hidden = text !== "" && !li.dataset.path.toLowerCase().includes(text);
      });
      // Deepest directories first, so a parent sees its children's state
      $$("li.dir").reverse().forEach((li) => {
        const shown = $$(":scope > details > ul > li", li).some((c) => !c.hidden);
        li.hidden = text !== "" && !shown && !li.dataset.path.toLowerCase().includes(text);
        if (text) $("details", li).open = true;
      });
    });
  }

  // ------------------------------------------------------------------ subscriptions

  function setupSubscribe() {
    $$("button[data-subscribe]").forEach((button) => {
      button.addEventListener("click", async () => {
        const on = button.dataset.on !== "true";
        try {
          const out = await postJSON(`/api/${on ? "subscribe" : "unsubscribe"}/${quote(button.dataset.subscribe)}`, {});
          button.dataset.on = String(out.subscribed);
          button.textContent = out.subscribed ? "Unsubscribe" : "Subscribe";
        } catch (e) {
          flash(e.message, true);
        }
      });
    });
  }

  // ------------------------------------------------------------------ uploads

  let limits = null;
  async function getLimits() {
    if (!limits) limits = await (await call("GET", "/api/limits")).json();
    return limits;
  }

  // Small files in one multipart request; big ones as a presigned S3 PUT, then a commit
  async function uploadOne(dir, file) {
    const target = `${dir}/${file.name}`;
    const { payload_limit: limit } = await getLimits();
    if (limit && file.size + MULTIPART_SLACK > limit) {
      // The size is signed into the URL: S3 takes exactly this file's bytes
      const start = await postJSON(`/api/upload-url/${quote(target)}?size=${file.size}`, {});
      const put = await fetch(start.url, { method: "PUT", body: file, credentials: "omit" });
      if (!put.ok) throw new Error(`the upload to storage failed: ${put.status}`);
      return (await call("POST", start.commit)).json();
    }
    const form = new FormData();
    form.append("file", file, file.name);
    return (await call("POST", `/api/upload/${quote(target)}`, { body: form })).json();
  }

  async function uploadAll(section, files) {
    const bar = $("progress", section);
    bar.hidden = false;
    bar.max = files.length;
    const done = [];
    try {
      for (const [i, file] of files.entries()) {
        done.push(await uploadOne(section.dataset.path, file));
        bar.value = i + 1;
      }
      flash(`Uploaded ${done.join(", ")}`);
      setTimeout(() => location.reload(), 300);
    } catch (e) {
      flash(e.message, true);
    }
  }

  function setupUpload() {
    $$("section.upload").forEach((section) => {
      const zone = $(".dropzone", section);
      const input = $("input[type=file]", section);
      input.addEventListener("change", () => uploadAll(section, Array.from(input.files)));
      zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
      zone.addEventListener("dragleave", () => zone.classList.remove("over"));
      zone.addEventListener("drop", (ev) => {
        ev.preventDefault();
        zone.classList.remove("over");
        uploadAll(section, Array.from(ev.dataTransfer.files));
      });
    });
  }

  // ------------------------------------------------------------------ delete, move, copy

  function parentOf(path) {
    const cut = path.lastIndexOf("/");
    return cut > 0 ? path.slice(0, cut) : path;
  }

  function setupManage() {
    $$("button[data-action=delete]").forEach((button) => {
      button.addEventListener("click", async () => {
        const path = button.dataset.path;
        if (!confirm(`Delete ${path}?`)) return;
        try {
          await call("POST", `/api/remove/${quote(path)}`);
          location.assign(`/roots/${quote(parentOf(path))}`);
        } catch (e) {
          flash(e.message, true);
        }
      });
    });
    $$("form.movecopy").forEach((form) => {
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const op = ev.submitter ? ev.submitter.value : "copy";
        try {
          const out = await postJSON(`/api/${op}/`, { src: form.dataset.path, dst: form.elements.dst.value.trim() });
          location.assign(`/roots/${quote(out)}`);
        } catch (e) {
          flash(e.message, true);
        }
      });
    });
  }

  // ------------------------------------------------------------------ lazy expressions

  function setupLazy() {
    const form = $("#lazy-form");
    if (!form) return;
    $("#add-operand").addEventListener("click", () => {
      const rows = $$(".operand", form);
      const copy = rows[rows.length - 1].cloneNode(true);
      $(".alias", copy).value = "";
      $(".target", copy).value = "";
      $("#operands").appendChild(copy);
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const operands = {};
      $$(".operand", form).forEach((row) => {
        const alias = $(".alias", row).value.trim();
        const target = $(".target", row).value;
        if (alias && target) operands[alias] = target;
      });
      const err = $("#lazy-error");
      err.hidden = true;
      try {
        const out = await postJSON("/api/lazyexpr/", {
          name: form.elements.name.value.trim(),
          expression: form.elements.expression.value,
          operands,
        });
        location.assign(`/roots/${quote(out)}`);
      } catch (e) {
        err.textContent = e.message;
        err.hidden = false;
      }
    });
  }

  setupLogin();
  setupLogout();
  setupFilter();
  setupSubscribe();
  setupUpload();
  setupManage();
  setupLazy();
})();
