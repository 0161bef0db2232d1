// The hosted site's service worker: from the second visit on, the pages' files
// and the Python runtime come from this browser's cache instead of the network.
//
// build.py fills in BUILD (a hash of every file the pages load), FILES (those
// files but the runtime's .wasm) and RUNTIME (the .wasm). Online, the .wasm is
// left to the HTTP cache: only there does the browser keep its compiled code,
// which spares each visit seconds of compiling. Installing caches FILES and
// RUNTIME, revalidated with the server; a new build has a new BUILD, so its
// worker installs next to this one, takes over and deletes this one's cache.
//
// Files of two builds are never mixed. Every page carries its build in
// <meta name="diffusion-lab-build">, and pages (navigations) always ask the
// server first: an unchanged page costs a "not modified"; the cached copy is
// used only offline, and such a page gets every file, the .wasm too, from the
// cache (the HTTP cache's copy may have expired: a site revisited without a
// network must still start). A page of this worker's build that it saw arrive
// gets its files from the cache. Any other page (of a newer build, or one that
// arrived before this worker started) gets what the server has now,
// revalidated: a fresh-looking copy in the HTTP cache may be of another build too.
// Should the network go while a newer build's page loads, its files are not
// taken from this build's cache (only boot.js and the stylesheet, so that the
// page can speak): the worker tells the page, which says to reload, and the
// reload, offline, is this build's page with this build's files.
//
// The data files a page fetches itself, long after it started (the trained
// network's weights: app/page.py's site_file), say the page's build in a header.
// A worker the browser stopped when idle and started again has forgotten whose
// pages are whose, and a tab may stay open across a deployment: such a file is
// this build's copy for a page of this build, the server's for a page of the
// build the server has, and for any other page (a tab left open across a
// deployment) a 409, which the page explains.
//
// boot.js registers this worker once a page is ready, on http(s) only: never in
// the offline edition.
"use strict";
const BUILD = "__BUILD__";
const FILES = [/* __FILES__ */];
const RUNTIME = [/* __RUNTIME__ */];
const PREFIX = "diffusion-lab-";
const BUILD_META = /<meta name="diffusion-lab-build" content="([^"]*)">/;
const SCOPE = self.registration.scope;
// Two copies of the lab may share an origin (on GitHub Pages every project site of a user is on USER.github.io:
// a fork at /diffusion-lab/, a course's copy at /course/), and caches are the origin's: each keeps its own.
const SITE = "@" + new URL(SCOPE).pathname;
const CACHE = PREFIX + BUILD + SITE;
const UNSCOPED = /^diffusion-lab-[0-9a-f]{16}$/; // named by builds before SITE: this site's if it holds its page
const listed = new Set(FILES.map((file) => new URL(file, SCOPE).href));
const runtime = new Set(RUNTIME.map((file) => new URL(file, SCOPE).href));
const ownPages = new Set(); // ids of the pages of this build whose arrival this worker saw
const offlinePages = new Set(); // ids of those that came from the cache, the network being out of reach
const newerPages = new Set(); // ids of pages of another build whose arrival this worker saw
const SPEAKING = new Set(["js/boot.js", "style.css"].map((file) => new URL(file, SCOPE).href));
const BUILD_HEADER = "X-Diffusion-Lab-Build";

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    try {
      await cache.addAll([...listed, ...runtime].map((url) => new Request(url, { cache: "no-cache" })));
    } catch (error) {
      await caches.delete(CACHE); // no storage for it (a small quota): leave no empty cache that looks kept
      throw error; // and this worker is not installed; the pages work on from the network
    }
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const page = new URL("index.html", SCOPE).href;
    for (const name of await caches.keys()) {
      const older = name.startsWith(PREFIX) && name.endsWith(SITE) && name !== CACHE;
      const unscoped = UNSCOPED.test(name) && (await caches.match(page, { cacheName: name }));
      if (older || unscoped) await caches.delete(name);
    }
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || !request.url.startsWith(SCOPE)) return;
  if (request.mode === "navigate") {
    const url = new URL(request.url);
    url.search = "";
    url.hash = "";
    const key = url.href === SCOPE ? `${SCOPE}index.html` : url.href; // the site's address is its home page
    if (listed.has(key)) event.respondWith(navigate(request, key, event.resultingClientId));
  } else if (request.headers.has(BUILD_HEADER)) {
    event.respondWith(ofBuild(request, request.headers.get(BUILD_HEADER), event.clientId));
  } else if (newerPages.has(event.clientId)) {
    event.respondWith(ofNewerBuild(request, event.clientId));
  } else if (!ownPages.has(event.clientId)) {
    event.respondWith(revalidated(request).then(([response]) => response));
  } else if (listed.has(request.url) || (runtime.has(request.url) && offlinePages.has(event.clientId))) {
    event.respondWith(fromCache(request));
  } // else the .wasm of a page of this build online: the HTTP cache, with its compiled code
});

async function navigate(request, key, clientId) {
  const [response, offline] = await revalidated(request, key);
  const build = response.ok && (await response.clone().text()).match(BUILD_META);
  if (build && build[1] === BUILD) {
    if (clientId) ownPages.add(clientId);
    if (clientId && offline) offlinePages.add(clientId);
  } else if (build) {
    if (clientId) newerPages.add(clientId);
    self.registration.update().catch(() => {}); // another build is online: fetch its worker
  }
  return response;
}

// A file of a page of another build: the server's, never this build's (but for the page's voice).
async function ofNewerBuild(request, clientId) {
  const [response, offline] = await revalidated(request).catch(() => [null, true]);
  if (!offline) return response;
  const client = await self.clients.get(clientId);
  if (client) client.postMessage({ type: "diffusion-lab:newer-build-unreachable" });
  return (SPEAKING.has(request.url) && response) || Response.error();
}

// A data file for a page of `build` (see the top).
async function ofBuild(request, build, clientId) {
  if (build === BUILD) return fromCache(request);
  const response = await fetch(new Request(request, { cache: "no-cache" })); // offline: no file of that build
  if ((await serverBuild(clientId)) === build) return response;
  return new Response(null, { status: 409, statusText: "Another build" });
}

// The build of the page the server has now at the address of a client, if it answers.
async function serverBuild(clientId) {
  const client = await self.clients.get(clientId);
  try {
    const match = client && (await (await fetch(client.url, { cache: "no-cache" })).text()).match(BUILD_META);
    return match && match[1];
  } catch (error) {
    return null;
  }
}

async function fromCache(request) {
  return (await caches.match(request, { cacheName: CACHE })) || fetch(request);
}

// What the server has now, revalidated, or without a network this build's copy (of `key`); and whether it is
// that copy. Pages use it offline; so do their files once the browser has stopped the idle worker: the one it
// starts again has never seen the page arrive (its ownPages are empty) when, minutes later, the page asks for
// a file only one setting needs (the trained network's weights). Offline, that page can only come from here.
async function revalidated(request, key = request) {
  try {
    return [await fetch(new Request(request, { cache: "no-cache" })), false];
  } catch (error) {
    const kept = await caches.match(key, { cacheName: CACHE });
    if (!kept) throw error;
    return [kept, true];
  }
}
