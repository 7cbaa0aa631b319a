// Image-stack viewer: one PNG frame per request (windowed server-side), drawn on a canvas.
"use strict";
(function () {
  const viewer = document.getElementById("viewer");
  if (!viewer) return;
  const $ = (id) => document.getElementById(id);
  const quote = (path) => path.split("/").map((s) => encodeURIComponent(s).replace(/%40/g, "@")).join("/");
  const canvas = $("frame-canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const slider = $("frame-slider");
  const contrast = $("contrast");
  let busy = false;
  let again = false;

  function frameURL() {
    const params = new URLSearchParams();
    if (viewer.dataset.version) params.set("version", viewer.dataset.version);
    if (slider) params.set("i", slider.value);
    if (contrast.value === "pct") {
      params.set("plo", $("plo").value);
      params.set("phi", $("phi").value);
    } else if (contrast.value === "manual") {
      if ($("lo").value !== "") params.set("lo", $("lo").value);
      if ($("hi").value !== "") params.set("hi", $("hi").value);
    }
    return `/web/frame/${quote(viewer.dataset.path)}?${params}`;
  }

  function applyZoom() {
    const zoom = $("zoom").value;
    canvas.classList.toggle("fit", zoom === "fit");
    canvas.style.width = zoom === "fit" ? "" : `${canvas.width * Number(zoom)}px`;
  }

  // At most one request in flight: while scrubbing, only the latest position is fetched next
  async function load() {
    if (busy) { again = true; return; }
    busy = true;
    const index = slider ? slider.value : "0";
    try {
      const resp = await fetch(frameURL(), { credentials: "same-origin" });
      if (!resp.ok) throw new Error(`${resp.status}: ${(await resp.json()).detail}`);
      const bitmap = await createImageBitmap(await resp.blob());
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(bitmap, 0, 0);
      canvas.dataset.frame = index;
      canvas.dataset.window = resp.headers.get("X-Frame-Window") || "";
      $("frame-info").textContent =
        `${bitmap.width}×${bitmap.height}, window ${resp.headers.get("X-Frame-Window")}, values ${resp.headers.get("X-Frame-Range")}`;
      applyZoom();
    } catch (e) {
      $("frame-info").textContent = e.message;
      canvas.dataset.frame = "error";
    } finally {
      busy = false;
      if (again) { again = false; load(); }
    }
  }

  if (slider) {
    slider.addEventListener("input", () => { $("frame-number").textContent = slider.value; load(); });
  }
  contrast.addEventListener("change", () => {
    $("pct-inputs").hidden = contrast.value !== "pct";
    $("manual-inputs").hidden = contrast.value !== "manual";
    load();
  });
  ["plo", "phi", "lo", "hi"].forEach((id) => $(id).addEventListener("change", load));
  $("zoom").addEventListener("change", applyZoom);
  load();
})();
