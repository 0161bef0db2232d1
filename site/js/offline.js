// The offline edition's loader: Diffusion Lab from one HTML file opened from disk.
//
// On a file:// page browsers refuse module scripts, import() and fetch() of other
// files, so PyScript cannot run there. build.py (build_offline) puts every view,
// the Python files and Pyodide with its wheels into one HTML file, and this
// classic script, inlined into that file, boots Pyodide itself and then runs the
// same page code as the hosted site (app/start.py, which starts app/forward.py or
// app/reverse.py):
//
//  1. It shows the view the address names (#forward, #reverse; anything else is
//     the home view) from its <template>, with the hosted page's title and
//     <body> attributes. Switching views reloads the file.
//  2. It answers Pyodide's fetch() calls for files under EMBEDDED from the
//     <script type="application/octet-stream" data-asset="NAME"> blocks (base64,
//     mostly gzip, unpacked with DecompressionStream). The wasm answer carries
//     Content-Type application/wasm: without it streaming compilation never ends.
//  3. It runs pyodide.js and pyodide.asm.js as inline classic scripts, so
//     loadPyodide finds _createPyodideModule and skips its own import().
//  4. It writes the Python files where PyScript puts them (./diffusion_lab/,
//     ./app/) and runs the view's page script with runPythonAsync.
//
// boot.js, inlined before this file, keeps the clock and the error box. While
// this file unpacks and starts Python the page's phase is "unpacking", which
// boot.js does not time out: this file has its own deadline, and messages for
// someone who opened the file from disk. The Python page code takes over the
// status line from the "numpy" phase on.
"use strict";
(() => {
  const STARTUP_LIMIT_S = 120; // from opening the file to a ready page
  const EMBEDDED = new URL("diffusion-lab-embedded/pyodide/", location.href).href; // never on disk
  const manifest = JSON.parse(document.getElementById("offline-manifest").textContent);
  const $ = (id) => document.getElementById(id);
  const megabytes = (bytes) => `${(bytes / 1e6).toFixed(0)} MB`;

  function viewName() {
    const name = location.hash.slice(1);
    return manifest.views.includes(name) ? name : "home";
  }

  function fail(title, detail) {
    if (window.diffusionLabShowError) window.diffusionLabShowError(title, detail);
    document.body.dataset.phase = "failed";
  }

  function status(text) {
    const phase = $("phase");
    if (phase) phase.textContent = text;
  }

  // -- 1. the view ----------------------------------------------------------
  function showView(name) {
    const template = $(`view-${name}`);
    document.title = template.dataset.title;
    for (const [attribute, value] of Object.entries(JSON.parse(template.dataset.body))) {
      document.body.setAttribute(attribute, value);
    }
    template.before(template.content.cloneNode(true));
    for (const link of document.querySelectorAll("a[href^='#']")) {
      const target = link.getAttribute("href").slice(1);
      // Links between views drop the settings of this one (they belong to its URL only).
      if (manifest.views.includes(target)) link.href = `${location.pathname}#${target}`;
    }
  }

  // In-page links (the skip link) move focus without touching the #view in the address.
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a[href^='#']");
    const target = link && $(link.getAttribute("href").slice(1));
    if (!target) return;
    event.preventDefault();
    if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
    target.focus();
    target.scrollIntoView();
  });
  // The hosted site's way round, file.html#forward?t=300 (a link edited by hand), means ?t=300#forward here.
  const settingsAfterView = /^#([\w-]+)\?(.*)$/.exec(location.hash);
  if (settingsAfterView && manifest.views.includes(settingsAfterView[1])) {
    history.replaceState(history.state, "", `${location.pathname}?${settingsAfterView[2]}#${settingsAfterView[1]}`);
  }
  const shown = viewName();
  // One page holds every view: another view's address (a link, or Back to an entry of this page) loads afresh.
  const followAddress = () => viewName() !== shown && location.reload();
  window.addEventListener("hashchange", followAddress);
  window.addEventListener("popstate", followAddress); // Back to an entry whose hash is the same as its neighbour's

  // -- 2. the embedded files ---------------------------------------------------
  const blocks = new Map();
  function block(name) {
    if (!blocks.size) {
      for (const element of document.querySelectorAll("script[data-asset]")) blocks.set(element.dataset.asset, element);
    }
    return blocks.get(name);
  }

  function decodeBase64(text) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function embeddedResponse(name) {
    const asset = manifest.assets[name];
    const element = block(name);
    if (!asset || !element) throw new Error(`the offline edition holds no file named ${name}`);
    let body = new Blob([decodeBase64(element.textContent)]).stream();
    if (asset.encoding === "gzip") body = body.pipeThrough(new DecompressionStream("gzip"));
    return new Response(body, { status: 200, headers: { "Content-Type": asset.type } });
  }

  const networkFetch = window.fetch.bind(window);
  window.fetch = function fetch(resource, options) {
    const url = resource instanceof Request ? resource.url : String(resource); // Pyodide passes URL objects
    if (!url.startsWith(EMBEDDED)) return networkFetch(resource, options);
    try {
      return Promise.resolve(embeddedResponse(decodeURIComponent(url.slice(EMBEDDED.length))));
    } catch (error) {
      return Promise.reject(error);
    }
  };

  // -- checks a teacher can act on -----------------------------------------------
  function missingFeatures() {
    const needed = {
      WebAssembly: typeof WebAssembly === "object" && typeof WebAssembly.instantiateStreaming === "function",
      DecompressionStream: typeof DecompressionStream === "function",
      "Blob streams": typeof Blob === "function" && typeof Blob.prototype.stream === "function",
    };
    return Object.keys(needed).filter((name) => !needed[name]);
  }

  function arrivedCharacters() {
    let arrived = 0;
    for (const [name, asset] of Object.entries(manifest.assets)) {
      const element = block(name);
      arrived += Math.min(element ? element.textContent.length : 0, asset.length);
    }
    return arrived;
  }

  // -- 3 and 4. Python -------------------------------------------------------------
  async function runEmbeddedScript(name) {
    const script = document.createElement("script");
    script.textContent = await embeddedResponse(name).text();
    document.head.append(script); // an inline classic script runs at once, at global scope
    script.remove();
  }

  async function startPython(script) {
    const missing = missingFeatures();
    if (missing.length) {
      fail("This browser is too old for Diffusion Lab.",
        "Open this file in a current version of Chrome, Edge or Firefox " +
          `(this one lacks ${missing.join(", ")}).`);
      return;
    }
    const arrived = arrivedCharacters(), expected = manifest.embeddedLength; // one byte per character
    if (arrived < expected) {
      fail("This file is incomplete.",
        `Only ${Math.floor(arrived / 1e6)} MB of the ${megabytes(expected)} of Python and data it carries arrived, so ` +
          "Python cannot start. Download the offline edition again and open the new copy.");
      return;
    }
    status("Unpacking Python…");
    for (const name of manifest.runtimeScripts) await runEmbeddedScript(name);
    if (typeof loadPyodide !== "function") throw new Error("pyodide.js did not define loadPyodide");
    status("Starting Python…");
    const pyodide = await loadPyodide({ indexURL: EMBEDDED });
    const home = pyodide.FS.cwd(); // PyScript writes its files relative to this folder too
    for (const [path, content] of Object.entries(manifest.files)) {
      // Python source is text; data files (the trained network) come as base64.
      const data = typeof content === "string" ? content : Uint8Array.from(atob(content.base64), (c) => c.charCodeAt(0));
      pyodide.FS.mkdirTree(`${home}/${path.slice(0, path.lastIndexOf("/"))}`);
      pyodide.FS.writeFile(`${home}/${path}`, data);
    }
    await pyodide.runPythonAsync(manifest.files[script], { filename: script });
  }

  showView(shown);
  const script = $(`view-${shown}`).dataset.script;
  if (!script) return; // the home view has no Python
  document.body.dataset.phase = "unpacking";
  setTimeout(() => {
    if (document.body.dataset.ready === "true" || document.body.dataset.phase === "failed") return;
    fail("Python did not start.",
      `This page was still starting Python after ${STARTUP_LIMIT_S} seconds. It needs a current Chrome, ` +
        "Edge or Firefox and about 1 GB of free memory: close other tabs and programs, then " +
        "reload the page. If it still does not start, download the offline edition again.");
  }, STARTUP_LIMIT_S * 1000);
  // The embedded files follow this script in the file: start once all of it has been read.
  document.addEventListener("DOMContentLoaded", () => {
    startPython(script).catch((error) => fail("Python could not start.", String((error && error.stack) || error)));
  });
})();
