// Diffusion Lab embed helper for host pages (optional).
//
//   <iframe src="https://…/forward.html?embed=1" title="Diffusion Lab" loading="lazy"
//           width="100%" height="760" style="border:0"></iframe>
//   <script src="https://…/embed.js" defer></script>
//
// An embedded view posts {type: "diffusion-lab:resize", height} to its parent whenever its
// content height changes. This script resizes the iframe that sent the message, after checking
// that the message comes from that iframe's own origin. Without it the iframe keeps its height.
"use strict";
(() => {
  const MAX_HEIGHT = 20000;
  window.addEventListener("message", (event) => {
    const data = event.data;
    if (!data || data.type !== "diffusion-lab:resize") return;
    for (const frame of document.getElementsByTagName("iframe")) {
      if (frame.contentWindow !== event.source) continue;
      if (new URL(frame.src, location.href).origin !== event.origin) return;
      const height = Number(data.height);
      if (Number.isFinite(height) && height > 0 && height <= MAX_HEIGHT) {
        frame.style.height = `${Math.ceil(height)}px`;
      }
      return;
    }
  });
})();
