// The home page says whether this browser keeps the lab for visits without a
// network, so that a teacher preparing a room knows before the network goes.
// The views' boot.js registers sw.js once a view is ready; the worker's install
// keeps every file in a cache named after the build, or fails (too little
// storage), which boot.js notes in localStorage (an install that failed leaves
// no registration to ask).
"use strict";
(async () => {
  const line = document.getElementById("kept");
  if (!line || !/^https?:$/.test(location.protocol)) return; // the offline edition holds everything already
  const say = (text) => {
    line.textContent = text;
    line.hidden = false;
  };
  const build = document.querySelector('meta[name="diffusion-lab-build"]')?.content;
  const notKept = () => {
    try {
      return localStorage.getItem("diffusion-lab:not-kept") === build;
    } catch (error) {
      return false;
    }
  };
  if (!window.isSecureContext) { // plain http from a network address: browsers keep nothing for it
    say("Browsers keep this site for visits without a network only when it is served over https (or from " +
      "this computer): for a room without network, use the offline edition.");
    return;
  }
  let registration;
  try {
    if (!navigator.cookieEnabled || !("serviceWorker" in navigator)) throw new Error("no service workers");
    registration = await navigator.serviceWorker.getRegistration();
  } catch (error) {
    say("This browser keeps no data of this site (blocked by its settings), so the views need the network at " +
      "every visit: for a room without network, use the offline edition.");
    return;
  }
  const site = new URL(".", location.href).pathname; // sw.js names its cache after its build and site
  const update = async () => {
    const failed = notKept();
    if (registration?.installing) { // an update too: its cache fills before it is the one in use
      say("This browser is keeping the lab for visits without a network…");
    } else if (registration?.active && build && (await caches.has(`diffusion-lab-${build}@${site}`))) {
      say("This browser has kept the lab: its views open here again without a network (unless it clears " +
        "this site's data when it closes, as private windows and some school computers do).");
    } else if (failed && registration?.active) { // an update that found no room
      say("This browser keeps an earlier version of the lab for visits without a network, and could not keep " +
        "this one (too little storage).");
    } else if (failed) {
      say("This browser could not keep the lab for visits without a network (too little storage, or a private " +
        "window): for a room without network, use the offline edition.");
    } else {
      say("Once a view has opened, this browser keeps the lab, and its views open here again without a network.");
    }
  };
  await update();
  registration?.addEventListener("updatefound", () => {
    const worker = registration.installing;
    update();
    worker?.addEventListener("statechange", update);
  });
  registration?.installing?.addEventListener("statechange", update);
})();
