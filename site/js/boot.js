// Loading progress and error reporting while Python starts. No image arithmetic
// here: the Python page code (app/*.py) takes over the status line as soon as
// it runs, and this file only keeps the clock, catches errors and gives up
// with a readable message if the runtime never starts.
"use strict";
(() => {
  const STARTUP_LIMIT_S = 120;
  const DIAGNOSE_AFTER_S = 12; // still no Python by then: check the usual hosting mistake
  const OFFLINE_CHECK_S = 1; // offline and still no Python by then: check that this browser kept the runtime
  const started = performance.now();
  const $ = (id) => document.getElementById(id);

  // Settings written after "#" (forward.html#t=300, as a video's link gives a time) go where the page reads them,
  // after "?", before Python reads the address; one the "?" part names already stays as it says. Not "#main" (no
  // "="), nor the offline edition's "#forward?t=300", whose loader reads its own.
  const inFragment = /^#([\w-]+=[^#&?]*(?:&[\w-]+=[^#&?]*)*)$/.exec(location.hash);
  if (inFragment && /^https?:$/.test(location.protocol)) {
    const named = new URLSearchParams(location.search);
    const moved = inFragment[1].split("&").filter((pair) => !named.has(decodeURIComponent(pair.split("=")[0])));
    const query = [location.search.slice(1), ...moved].filter(Boolean).join("&");
    history.replaceState(history.state, "", location.pathname + (query ? `?${query}` : ""));
  }

  let final = false; // a message that says why this page cannot work here: later errors only follow from it
  function showError(title, detail) {
    const box = $("error");
    if (!box || final) return;
    box.hidden = false;
    box.querySelector(".error-title").textContent = title;
    const pre = box.querySelector(".error-detail");
    pre.textContent = detail || "";
    pre.hidden = !detail;
    const ready = document.body.dataset.phase === "ready";
    document.body.dataset.phase = ready ? "ready" : "failed";
    if (!ready && $("status")) $("status").hidden = true; // its clock and bar would stand still above the message
    // A page that works on after a failure (the next chain may well succeed) lets the message be put away.
    box.querySelector(".error-dismiss").hidden = !ready;
  }
  window.diffusionLabShowError = showError;

  // app/page.py: this page's Python is of the last build. Without a service worker to keep a page's build, the
  // HTTP cache may hold the last build's files for minutes after a deployment (GitHub Pages lets them stay fresh
  // for 10). Fetch the page's own files anew and reload: "reloading". At most once a minute in this tab (the mark
  // rides on the history entry, which a reload keeps and which needs no storage), for a server that still sends
  // the last build's files for a while would be asked again and again: "tried"; "unreachable" if the files got no
  // answer (a reload would show the browser's own error page).
  const REFRESH_AGAIN_MS = 60_000;
  window.diffusionLabRefresh = async () => {
    const build = document.querySelector('meta[name="diffusion-lab-build"]')?.content || "";
    const last = history.state?.diffusionLabRefreshed;
    if (last?.build === build && Date.now() - last.at < REFRESH_AGAIN_MS) return "tried";
    history.replaceState({ ...history.state, diffusionLabRefreshed: { build, at: Date.now() } }, "");
    if ($("phase")) $("phase").textContent = "The lab was just updated: fetching this page's files anew…";
    const own = new Set();
    for (const element of document.querySelectorAll('link[rel="stylesheet"], link[rel="preload"], script[src]')) {
      own.add(element.href || element.src);
    }
    for (const script of document.querySelectorAll('script[type="py"]')) {
      for (const name of ["src", "config"]) own.add(new URL(script.getAttribute(name), location.href).href);
    }
    const site = new URL(".", location.href).href;
    const versioned = /^(pyodide|pyscript)\//; // whose files change only with their versions
    const mine = [...own].filter((url) => url.startsWith(site) && !versioned.test(url.slice(site.length)));
    const fetched = await Promise.all(mine.map((url) => fetch(url, { cache: "reload" }).then(() => 1, () => 0)));
    if (fetched.includes(0)) return "unreachable";
    location.reload();
    return "reloading";
  };

  // A file the site needs did not arrive: the usual cause is an incomplete upload.
  function showMissingFile(title, path, status) {
    showError(title, `The file ${path} could not be loaded (HTTP ${status}). ` +
      "Whoever hosts this page should upload the complete dist/ folder from build.py.");
  }

  // PyScript opens IndexedDB as it loads (its package cache, pyscript.fs), and a BroadcastChannel (for workers'
  // calls to the page), and cannot start without them. A browser that blocks this site's data ("block all
  // cookies") refuses both: Firefox throws, Chromium fails the database's request. PyScript then gets a database
  // that lasts as long as the page, and a channel to no one: this site keeps nothing there, and has no workers.
  // (Only what PyScript asks of one: an object store of keys and values, answered through on... handlers.)
  function memoryDatabase() {
    const answer = (result) => {
      const request = {};
      Promise.resolve().then(() => request.onsuccess && request.onsuccess({ target: { result } }));
      return request;
    };
    const stores = new Map();
    const store = (entries) => ({
      count: () => answer(entries.size),
      clear: () => answer(entries.clear()),
      delete: (key) => answer(void entries.delete(key)),
      get: (key) => answer(entries.get(key)),
      getKey: (key) => answer(entries.has(key) ? key : undefined),
      getAllKeys: () => answer([...entries.keys()]),
      put: (value, key) => answer(entries.set(key, value) && key),
    });
    return {
      objectStoreNames: { get length() { return stores.size; }, contains: (name) => stores.has(name) },
      createObjectStore: (name) => store(stores.set(name, new Map()).get(name)),
      transaction: () => ({ objectStore: (name) => store(stores.get(name)) }),
      close() {},
    };
  }
  function openInMemory(request) {
    const database = memoryDatabase();
    const transaction = {};
    Promise.resolve().then(() => {
      if (request.onupgradeneeded) request.onupgradeneeded({ target: { result: database, transaction } });
      if (transaction.oncomplete) transaction.oncomplete();
      if (request.onsuccess) request.onsuccess({ target: { result: database } });
    });
    return request;
  }
  try {
    const open = indexedDB.open.bind(indexedDB);
    indexedDB.open = (name, version) => {
      let request;
      try {
        request = open(name, version);
      } catch (error) {
        return openInMemory({}); // Firefox: SecurityError
      }
      request.addEventListener("error", (event) => { // Chromium; before the handlers PyScript sets
        event.stopImmediatePropagation();
        event.preventDefault();
        openInMemory(request);
      });
      return request;
    };
  } catch (error) {
    // No IndexedDB at all here: PyScript says so itself.
  }
  try {
    if (!navigator.cookieEnabled) new BroadcastChannel("diffusion-lab").close(); // only then refused
  } catch (error) {
    window.BroadcastChannel = class extends EventTarget {
      constructor(name) {
        super();
        this.name = name;
      }
      postMessage() {}
      close() {}
    };
  }

  let diagnosed = false;
  // Pyodide waits forever if the server sends its .wasm file with the wrong type.
  async function checkWasmType() {
    try {
      const response = await fetch("pyodide/pyodide.asm.wasm", { method: "HEAD", cache: "no-store" });
      const type = response.headers.get("content-type") || "(none)";
      if (!response.ok) {
        showMissingFile("Python cannot start: this site is missing its Python runtime.",
          "pyodide/pyodide.asm.wasm", response.status);
      } else if (!type.startsWith("application/wasm")) {
        showError("Python cannot start: the server sends the runtime with the wrong type.",
          `pyodide/pyodide.asm.wasm is served as "${type}" but browsers need "application/wasm". ` +
          "Whoever hosts this page should add that MIME type for .wasm files (GitHub Pages does this already).");
      }
    } catch (error) {
      // Offline or blocked: the startup limit below still gives a message.
    }
  }

  // Python failed before the page's code ran. Pyodide's own message then tells a reader little (a missing
  // wheel surfaces as "_emscripten_stack_get_current is not a function"): name the file that is missing.
  async function findMissingFile() {
    try {
      const lock = await (await fetch("pyodide/pyodide-lock.json", { cache: "no-store" })).json();
      for (const entry of Object.values(lock.packages)) {
        const response = await fetch(`pyodide/${entry.file_name}`, { method: "HEAD", cache: "no-store" });
        if (!response.ok) {
          showMissingFile(`Python cannot start: this site could not load its Python package ${entry.name}.`,
            `pyodide/${entry.file_name}`, response.status);
          return;
        }
      }
    } catch (error) {
      // Offline, or the lock itself is missing: the message already shown stands.
    }
    if (!diagnosed) {
      diagnosed = true;
      checkWasmType();
    }
  }

  // A frame sandboxed without allow-same-origin has an opaque origin: the site's own files come back as another
  // origin's, and there is no storage, so Python cannot start. Say so at once, not after the startup limit.
  const opaqueFrame = /^https?:$/.test(location.protocol) && self.origin === "null";
  function showSandboxed() {
    const url = new URL(location.href);
    url.searchParams.delete("embed");
    showError("Python cannot start in this frame.",
      "The page around this view puts it in a frame sandboxed without “allow-same-origin”, where it cannot " +
      "load its own files. Whoever made that page can add allow-same-origin to the frame's sandbox " +
      `attribute (beside allow-scripts), or link to the view instead: ${url.href}`);
    const link = document.createElement("a");
    link.href = url.href;
    link.target = "_blank"; // a sandboxed frame may not navigate itself; a new tab is not sandboxed
    link.rel = "noopener";
    link.textContent = "Open this view on its own page";
    const line = document.createElement("p");
    line.append(link);
    $("error").append(line);
    final = true;
  }

  // Offline, a page this browser kept (sw.js) starts only if the runtime was kept too; without it Pyodide
  // waits forever. A worker of an older build did not keep the .wasm, nor does a browser that dropped it.
  function showOffline() {
    showError("Python cannot start: this browser is offline.",
      "The Python runtime this page needs has not been kept in this browser (a first visit, or the site " +
      "changed since the last one). Connect to the network and reload, or use the offline edition (linked " +
      "from the home page), which runs from a file with no network at all.");
  }

  async function runtimeKept() {
    const wasm = "pyodide/pyodide.asm.wasm";
    try {
      if ("caches" in window && (await caches.match(wasm))) return true; // sw.js's copy
    } catch (error) {
      // No cache storage here (some private windows): ask the HTTP cache.
    }
    try {
      const response = await fetch(wasm, { cache: "only-if-cached", mode: "same-origin" });
      if (response.body) response.body.cancel();
      return response.ok;
    } catch (error) {
      return false;
    }
  }

  let offlineChecked = false;
  let runtimeArrived = false; // its .wasm is here: Python starts, whatever the network does now
  async function checkOffline() {
    offlineChecked = true;
    if (!runtimeArrived && !(await runtimeKept()) && document.body.dataset.phase === "runtime") showOffline();
  }

  // The next visit: sw.js (written by build.py) keeps the site's files in this browser.
  // Registered once the page is ready, so it never competes with the first load; on
  // http(s) only, never in the offline edition (file://), which holds everything already.
  function keepForNextVisit() {
    if (!/^https?:$/.test(location.protocol) || !("serviceWorker" in navigator)) return;
    if (!navigator.cookieEnabled) return; // this site's data is blocked: it would be refused (Firefox logs it)
    const build = document.querySelector('meta[name="diffusion-lab-build"]')?.content;
    const note = (kept) => { // for the home page (js/home.js): an install that failed leaves nothing to ask
      try {
        if (kept) localStorage.removeItem("diffusion-lab:not-kept");
        else localStorage.setItem("diffusion-lab:not-kept", build);
      } catch (error) {
        // Storage refused: the home page cannot tell, and says nothing wrong.
      }
    };
    try {
      const watch = (worker) => {
        let activated = false; // a kept build replaced by a newer one later turns redundant too
        worker?.addEventListener("statechange", () => {
          if (worker.state === "activated") {
            activated = true;
            note(true);
          } else if (worker.state === "redundant" && !activated) {
            note(false); // its install failed
          }
        });
      };
      navigator.serviceWorker.register("sw.js").then((registration) => {
        watch(registration?.installing); // none where workers are blocked (Playwright's "block": undefined)
        registration?.addEventListener("updatefound", () => watch(registration.installing)); // a later build's
      }, () => note(false)); // refused: see below
    } catch (error) {
      // Not allowed here (some private windows, sandboxed frames, a browser that blocks this site's data, which
      // may throw at once): the HTTP cache still helps.
    }
  }

  // The runtime's phase is most of the wait on a slow device: say when its download is done and it starts.
  if ("PerformanceObserver" in window) {
    const runtimeFetched = new PerformanceObserver((list) => {
      const arrived = (entry) => entry.name.endsWith("/pyodide.asm.wasm") && entry.decodedBodySize > 0; // not failed
      if (!list.getEntries().some(arrived)) return;
      runtimeFetched.disconnect();
      runtimeArrived = true;
      if (document.body.dataset.phase !== "runtime" || !$("phase")) return;
      $("phase").textContent = "Starting Python…";
      $("progress").value = 0.5;
    });
    runtimeFetched.observe({ type: "resource", buffered: true });
  }

  // sw.js: this page is of a newer build than the one this browser keeps, and the network went before its files
  // came. Offline, a reload gets the kept build whole.
  try {
    navigator.serviceWorker.addEventListener("message", (event) => {
      if (!event.data || event.data.type !== "diffusion-lab:newer-build-unreachable") return;
      showError("The lab was updated, and the connection was lost before its new files arrived.",
        "Reload the page: without a network this browser opens the version it kept, whole; with one, the new " +
        "version.");
      final = true;
    });
  } catch (error) {
    // No service workers here (file://, old browsers), or a sandboxed frame, where even reading one throws.
  }

  const tick = setInterval(() => {
    const seconds = (performance.now() - started) / 1000;
    const elapsed = $("elapsed");
    if (elapsed) elapsed.textContent = `${seconds.toFixed(1)} s`;
    const phase = document.body.dataset.phase;
    if (phase === "ready" || phase === "failed") {
      clearInterval(tick);
      if (phase === "ready") keepForNextVisit();
    } else if (seconds > OFFLINE_CHECK_S && phase === "runtime" && !navigator.onLine && !offlineChecked) {
      checkOffline();
    } else if (seconds > DIAGNOSE_AFTER_S && phase === "runtime" && !diagnosed) {
      diagnosed = true;
      checkWasmType();
    } else if (seconds > STARTUP_LIMIT_S && (!phase || phase === "runtime")) {
      clearInterval(tick);
      showError(
        "Python did not start.",
        `The Python runtime was still loading after ${STARTUP_LIMIT_S} seconds. ` +
          "If you host this site yourself, check that .wasm files are served as " +
          "application/wasm and that the pyodide/ folder was copied completely; " +
          "otherwise reload the page on a faster connection."
      );
    }
  }, 100);

  window.addEventListener("error", (event) => {
    const where = event.filename ? ` (${event.filename.split("/").pop()}:${event.lineno})` : "";
    showError("Something went wrong.", `${event.message || event.error || "unknown error"}${where}`);
  });
  window.addEventListener("unhandledrejection", (event) => {
    if (final) return;
    const reason = event.reason;
    const starting = document.body.dataset.phase === "runtime";
    const message = String((reason && (reason.message || reason)) || "unknown error");
    if (starting && !navigator.onLine) {
      showOffline();
      return;
    }
    showError("Something went wrong while loading.", message);
    if (starting && /^https?:$/.test(location.protocol)) findMissingFile();
  });
  // PyScript reports Python errors that escape the page code here.
  window.addEventListener("py:error", (event) => showError("Python error.", String(event.detail || "")));

  // ---- Embedding: presentation flags (not state; the settings themselves are Python's) ----
  // ?embed=1 drops the site chrome, ?hide=group,group hides control groups,
  // ?lock=name,name fixes settings so a course page can show a chosen view.
  // The address as it is now: the offline edition's loader turns file.html#forward?t=300 into ?t=300#forward
  // after this script has run.
  const params = () => new URLSearchParams(location.search);
  const embedded = /^(1|true|yes)$/i.test(params().get("embed") || "");
  if (embedded) document.documentElement.classList.add("embed");
  // lock=t&lock=seed is lock=t,seed: each of the flag's values counts (the first alone did, without a word).
  const list = (key) => params().getAll(key).join(",").split(",").map((name) => name.trim()).filter(Boolean);

  function applyFlags() {
    const embed = params().get("embed");
    const badEmbed = embed !== null && !/^(1|true|yes|0|false|no|)$/i.test(embed);
    if (badEmbed) notice(`embed: ignored “${embed.slice(0, 40)}”, not a valid value (embed=1 drops the site's header)`);
    const groups = [...new Set([...document.querySelectorAll("[data-group]")].map((part) => part.dataset.group))];
    const ignored = (names) => names.map((name) => `“${name.slice(0, 40)}”`).join(", ");
    const unknownGroups = list("hide").filter((group) => !groups.includes(group));
    if (unknownGroups.length) {
      notice(`hide: ignored ${ignored(unknownGroups)}, not ${unknownGroups.length > 1 ? "groups" : "a group"} ` +
        `of this page (${groups.join(", ")})`);
    }
    // An embed drops the Share group (style.css hides it before this runs): its students need no embed code.
    for (const group of embedded ? ["share", ...list("hide")] : list("hide")) {
      for (const part of document.querySelectorAll(`[data-group="${CSS.escape(group)}"]`)) part.hidden = true;
    }
    // With all of it hidden (equations, code, export), the panel under the view goes, its heading too.
    const learn = $("learn");
    if (learn && [...learn.querySelectorAll(".learn-part")].every((part) => part.hidden)) learn.hidden = true;
    // With every settings group hidden, the picture and figures take the settings' column too.
    const settings = $("controls");
    if (settings && [...settings.children].every((child) => child.hidden || child.tagName === "H2")) {  // its heading
      settings.hidden = true;
      settings.closest(".layout").classList.add("without-settings");
    }
    const controlNamed = (name) => document.querySelector(`fieldset[data-group] [name="${CSS.escape(name)}"]`);
    // The schedule's code is part of the schedule, the oracle's noise prediction of the denoiser, the steps'
    // code of the sampler: fixing one fixes both.
    const locks = list("lock");
    for (const [setting, code] of [["schedule", "hook"], ["denoiser", "noise_hook"], ["sampler", "step_hook"],
      ["sampler", "ddim_hook"]]) {
      if (locks.includes(setting) && !locks.includes(code) && controlNamed(code)) locks.push(code);
    }
    const unknownControls = locks.filter((name) => !controlNamed(name));
    if (unknownControls.length) {
      const names = [...document.querySelectorAll("fieldset[data-group] [name]")].map((control) => control.name);
      notice(`lock: ignored ${ignored(unknownControls)}, not ${unknownControls.length > 1 ? "controls" : "a control"} ` +
        `of this page (${[...new Set(names)].join(", ")})`);
    }
    dropFromAddress({ embed: badEmbed ? [embed] : [], hide: unknownGroups, lock: unknownControls });
    for (const name of locks) {
      const control = controlNamed(name);
      if (!control) continue;
      control.dataset.locked = "true";
      if (control.localName === "textarea") {  // code stays readable, and Run can use code the link brought
        control.readOnly = true;
        $(`${control.id}-reset`).disabled = true;
        const note = document.createElement("p");
        note.className = "help";
        note.id = `${control.id}-locked`;
        note.textContent = "The link that opened this page fixes this code: you can read it and run it, not change it.";
        control.after(note);
        control.setAttribute("aria-describedby", `${note.id} ${control.getAttribute("aria-describedby") || ""}`.trim());
        continue;
      }
      control.disabled = true;
      if (name === "t" || name === "step") {
        for (const id of ["play", "step-button", "reset"]) $(id).disabled = true;
        const note = document.createElement("p");  // say why Play does nothing
        note.className = "help";
        note.textContent = "The link that opened this page fixes the time at this step, so Play, Step and Reset are off.";
        control.closest(".field").append(note);
      }
    }
  }

  // Flag values the page ignored (and said so) leave the address, so a copied link does not repeat them.
  function dropFromAddress(ignoredByFlag) {
    const url = new URL(location.href);
    for (const [flag, names] of Object.entries(ignoredByFlag)) {
      if (!names.length) continue;
      const kept = flag === "embed" ? [] : list(flag).filter((name) => !names.includes(name));
      if (kept.length) url.searchParams.set(flag, kept.join(","));
      else url.searchParams.delete(flag);
    }
    if (url.href !== location.href) history.replaceState(history.state, "", url.href);
  }

  // The header's link to the other view carries the settings both have (build.py names them on the link), as
  // the address gives them: Python writes them there as it starts, and again on each change.
  function carrySettings() {
    for (const link of document.querySelectorAll(".site-header a[data-carries]")) {
      const url = new URL(link.href);
      const carried = new URLSearchParams();
      const address = params();
      for (const name of link.dataset.carries.split(" ")) {
        for (const value of address.getAll(name)) carried.append(name, value);
      }
      url.search = carried.toString();
      link.href = url.href;
    }
  }

  function reportHeight() {
    if (window.parent === window) return;
    const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    window.parent.postMessage({ type: "diffusion-lab:resize", height }, "*");
  }

  // ---- Sharing: copy the page's link (kept current by Python) or an <iframe> snippet ----
  // The page's link without code kept only in this tab (app/page.py lists it): elsewhere its key finds nothing.
  function sharedUrl() {
    const url = new URL(location.href);
    for (const name of (document.body.dataset.tabOnly || "").split(",").filter(Boolean)) {
      url.searchParams.delete(name);
    }
    return url;
  }

  function embedCode() {
    const url = sharedUrl();
    url.searchParams.set("embed", "1");
    const view = document.body.dataset.view;
    const title = `Diffusion Lab: ${view} diffusion`;
    // embed.js on the host page fits the frame to the view's height (the view posts it); without it, 760 px
    // and a scrollbar inside the frame. Platforms that strip scripts (most LMS blocks) leave it out.
    // (The backslash in its closing tag: boot.js is inlined in the offline edition, where the tag would end it.)
    const sizer = new URL("embed.js", url).href;
    return `<iframe src="${url.href.replace(/"/g, "&quot;")}" title="${title}" loading="lazy" ` +
      `width="100%" height="760" style="border:0; max-width:64rem"></iframe>\n` +
      `<script src="${sizer.replace(/"/g, "&quot;")}" defer><\/script>`;
  }
  const EMBED_NOTE = " Its script line fits the frame to the view's height; where a learning platform strips " +
    "scripts the frame keeps 760 px and scrolls.";

  // The offline edition's address is a file on this computer: say so, or a teacher pastes a dead link.
  const LOCAL_ONLY = " It points at this file, which opens only on this computer: to share the lab or " +
    "embed it in a course site, copy it from the hosted site instead.";

  async function copy(text, what, note = "") {
    const field = $("share-text");
    let caveats = note + (location.protocol === "file:" ? LOCAL_ONLY : "");  // and what the copy will not bring
    const written = document.body.dataset.linkCaveats;  // by app/page.py: an upload, long code, the chain
    if (written) caveats += ` ${written}`;
    field.value = text;
    field.hidden = false;
    try {
      await navigator.clipboard.writeText(text);
      $("share-status").textContent = `${what} copied to the clipboard.${caveats}`;
    } catch (error) {
      field.select();
      $("share-status").textContent = `Select the ${what.toLowerCase()} below and copy it (Ctrl+C or ⌘C).${caveats}`;
    }
  }

  // ---- Notices: what a link, a file or a setting asked for that the page refused or replaced ----
  // Text only, never HTML (notices echo the URL and file names). The same text moves to the end instead of
  // repeating, a notice about the same thing (a setting's name, "upload") replaces the last one about it,
  // only the newest MAX_NOTICES stay, and each has a button that dismisses it.
  const MAX_NOTICES = 24; // one bad link gives at most one per setting (16) and one per flag
  let noticeCount = 0;  // for each notice's id, which its dismiss button is described by
  function clearNotices(about) {
    for (const item of document.querySelectorAll("#notices > li")) if (item.dataset.about === about) item.remove();
    offerDismissAll();
  }
  // With two notices or more, one button dismisses them all (one bad link can give many).
  function offerDismissAll() {
    const box = $("notices"), all = $("dismiss-all");
    if (box && all) all.hidden = box.children.length < 2;
  }
  function notice(text, about = "") {
    const box = $("notices");
    if (!box) return;
    for (const item of [...box.children]) if (item.firstChild.textContent === text) item.remove();
    if (about) clearNotices(about);
    const item = document.createElement("li");
    item.dataset.about = about;
    const words = document.createElement("span");
    words.textContent = text;
    words.id = `notice-${++noticeCount}`;
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "dismiss";
    dismiss.textContent = "✕";
    dismiss.setAttribute("aria-label", "Dismiss this notice");
    dismiss.setAttribute("aria-describedby", words.id);  // which one, for a screen reader tabbing through
    item.append(words, " ", dismiss);
    box.append(item);
    while (box.children.length > MAX_NOTICES) box.firstElementChild.remove();
    offerDismissAll();
  }
  window.diffusionLabNotice = notice;
  window.diffusionLabClearNotices = clearNotices;

  // A notice's button dismisses it; the focus moves to the next one's, if any.
  function dismissNotice(event) {
    const button = event.target.closest("button.dismiss");
    if (!button) return;
    const item = button.closest("li");
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    offerDismissAll();
    if (next) next.querySelector("button.dismiss").focus();
    else focusTimeSlider();
  }

  // After the last notice goes, the focus goes on to the time slider below, not lost with the button; where the
  // slider is locked or hidden by the link, to the content.
  function focusTimeSlider() {
    const slider = [...document.querySelectorAll('[name="t"], [name="step"]')]
      .find((control) => !control.disabled && control.getClientRects().length > 0);
    const main = $("main");
    if (slider) slider.focus();
    else if (main) {
      main.tabIndex = -1;
      main.focus();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (opaqueFrame) showSandboxed();
    applyFlags();
    carrySettings();
    const notices = $("notices");
    if (notices) notices.addEventListener("click", dismissNotice);
    const error = $("error");
    if (error) {
      error.querySelector(".error-dismiss").addEventListener("click", () => {
        error.hidden = true;
        focusTimeSlider();
      });
    }
    const dismissAll = $("dismiss-all");
    if (dismissAll) {
      dismissAll.addEventListener("click", () => {
        notices.replaceChildren();
        offerDismissAll();
        focusTimeSlider();
      });
    }
    const copyLink = $("copy-link");
    // Python writes the address a moment after a slider moves; ask it to write it now.
    const flushUrl = () => window.dispatchEvent(new Event("diffusion-lab:flush-url"));
    if (copyLink) copyLink.addEventListener("click", () => { flushUrl(); copy(sharedUrl().href, "Link"); });
    const copyEmbed = $("copy-embed");
    if (copyEmbed) copyEmbed.addEventListener("click", () => { flushUrl(); copy(embedCode(), "Embed code", EMBED_NOTE); });
    if (window.parent !== window && "ResizeObserver" in window) {
      new ResizeObserver(reportHeight).observe(document.documentElement);
    }
    reportHeight();
  });
})();
