"use strict";
// colortrack app: annotate (paint keyframes, propagate, correct, export) and colorize.
// Masks travel as raw bytes: one uint8 object id per pixel, row-major (0 = background).

const $ = (id) => document.getElementById(id);
const state = {
  project: null, frame: 0, ids: null, source: "", active: 1, objects: [],
  polygon: [], stroke: null, job: null, version: 0,
};

// ---------------------------------------------------------------- server
async function api(method, url, body) {
  const options = { method, headers: {} };
  if (body instanceof Blob || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
    options.body = body;
    options.headers["Content-Type"] = "application/octet-stream";
  } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    showStatus(message, true);
    throw new Error(message);
  }
  return response;
}
const projectUrl = (path) => `/api/projects/${state.project.id}${path}`;

function showStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// ---------------------------------------------------------------- colours
function davisColor(id) {
  const rgb = [0, 0, 0];
  for (let level = 0; level < 8; level++)
    for (let c = 0; c < 3; c++) rgb[c] |= ((id >> (3 * level + c)) & 1) << (7 - level);
  return "#" + rgb.map((v) => v.toString(16).padStart(2, "0")).join("");
}
const hexToRgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

// ---------------------------------------------------------------- opening a video
async function listVideos() {
  const { videos } = await (await api("GET", "/api/videos")).json();
  $("video-list").innerHTML = "";
  for (const video of videos) $("video-list").add(new Option(video, video));
}

async function openVideo(path) {
  const project = await (await api("POST", "/api/open", { path })).json();
  setProject(project);
  if (project.job) follow(project.job);
}

async function uploadVideo(file) {
  showStatus(`uploading ${file.name}…`);
  const url = `/api/upload?name=${encodeURIComponent(file.name)}`;
  const project = await (await api("PUT", url, file)).json();
  await listVideos();
  setProject(project);
  if (project.job) follow(project.job);
}

function setProject(project) {
  state.project = project;
  state.objects = project.objects.length ? project.objects : [{ id: 1, name: "object 1", color: davisColor(1) }];
  state.active = state.objects[0].id;
  state.polygon = [];
  for (const id of ["mask", "draft"]) Object.assign($(id), { width: project.width, height: project.height });
  for (const id of ["scrub", "color-scrub"]) $(id).max = project.num_frames - 1;
  $("strip").width = project.num_frames;
  const fit = `min(960px, calc((100vh - 240px) * ${project.width / project.height}))`;
  for (const id of ["stage", "strip", "scrub"]) $(id).style.maxWidth = fit;
  $("video-name").textContent = `${project.video} · ${project.width}×${project.height} · ${project.num_frames} frames`;
  document.body.dataset.project = project.id;
  renderObjects();
  renderSummary();
  showFrame(0);
  showStatus(`opened ${project.video}`);
}

async function refreshProject() {
  const project = await (await api("GET", projectUrl(""))).json();
  Object.assign(state.project, project);
  renderSummary();
}

// ---------------------------------------------------------------- frames and masks
async function showFrame(index) {
  const project = state.project;
  if (!project) return;
  state.frame = Math.max(0, Math.min(project.num_frames - 1, index));
  state.polygon = [];
  clearDraft();
  $("scrub").value = $("color-scrub").value = state.frame;
  $("frame-label").textContent = `frame ${state.frame} / ${project.num_frames - 1}`;
  document.body.dataset.frame = state.frame;
  $("frame").src = projectUrl(`/frames/${state.frame}.jpg?v=${state.version}`);
  showColorFrame();
  await loadMask();
}

async function loadMask() {
  const { width, height } = state.project;
  const index = state.frame;
  const response = await api("GET", projectUrl(`/masks/${index}`));
  if (index !== state.frame) return;
  if (response.status === 204) {
    state.ids = new Uint8Array(width * height);
    state.source = "";
  } else {
    state.ids = new Uint8Array(await response.arrayBuffer());
    state.source = response.headers.get("X-Mask-Source");
  }
  const stale = state.project.stale.includes(index) ? " (out of date)" : "";
  $("frame-source").textContent = state.source ? `${state.source} mask${stale}` : "no mask yet";
  document.body.dataset.maskSource = state.source;
  renderMask();
}

function renderMask() {
  const canvas = $("mask");
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  if ($("show-overlay").checked) {
    const colors = new Map(state.objects.map((o) => [o.id, hexToRgb(o.color)]));
    const ids = state.ids;
    const width = canvas.width;
    for (let i = 0; i < ids.length; i++) {
      if (!ids[i]) continue;
      const rgb = colors.get(ids[i]) || hexToRgb(davisColor(ids[i]));
      const x = i % width;
      const edge = (x > 0 && ids[i - 1] !== ids[i]) || (x < width - 1 && ids[i + 1] !== ids[i])
        || ids[i - width] !== ids[i] || ids[i + width] !== ids[i];
      image.data.set([rgb[0], rgb[1], rgb[2], edge ? 255 : 120], 4 * i);
    }
  }
  context.putImageData(image, 0, 0);
}

async function saveKeyframe() {
  const project = await (await api("PUT", projectUrl(`/keyframes/${state.frame}`), state.ids)).json();
  Object.assign(state.project, project);
  mergeObjects(project.objects);
  state.source = document.body.dataset.maskSource = "keyframe";
  document.body.dataset.saves = Number(document.body.dataset.saves || 0) + 1;
  $("frame-source").textContent = "keyframe mask";
  renderSummary();
}

// ---------------------------------------------------------------- painting
const tool = () => document.querySelector("input[name=tool]:checked").value;

function toImage(event) {
  const rect = $("draft").getBoundingClientRect();
  return [
    ((event.clientX - rect.left) * state.project.width) / rect.width,
    ((event.clientY - rect.top) * state.project.height) / rect.height,
  ];
}

function clearDraft() {
  const canvas = $("draft");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}

// Draw a shape on an offscreen canvas of the frame's size and give the pixels it covers.
function rasterize(draw) {
  const { width, height } = state.project;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d");
  context.fillStyle = context.strokeStyle = "#fff";
  draw(context);
  const alpha = context.getImageData(0, 0, width, height).data;
  const covered = [];
  for (let i = 0; i < width * height; i++) if (alpha[4 * i + 3] >= 128) covered.push(i);
  return covered;
}

function strokePath(context, points, size) {
  context.lineWidth = size;
  context.lineCap = context.lineJoin = "round";
  context.beginPath();
  context.moveTo(...points[0]);
  for (const point of points.slice(1)) context.lineTo(...point);
  if (points.length === 1) {
    context.arc(points[0][0], points[0][1], size / 2, 0, 2 * Math.PI);
    context.fill();
  } else context.stroke();
}

function polygonPath(context, points) {
  context.beginPath();
  context.moveTo(...points[0]);
  for (const point of points.slice(1)) context.lineTo(...point);
  context.closePath();
  context.fill();
}

async function apply(covered, value) {
  for (const i of covered) state.ids[i] = value;
  renderMask();
  clearDraft();
  await saveKeyframe();
}

function drawDraft() {
  clearDraft();
  const context = $("draft").getContext("2d");
  const color = tool() === "eraser" ? "#ffffff" : activeColor();
  context.strokeStyle = context.fillStyle = color;
  if (state.stroke) {
    context.globalAlpha = 0.6;
    strokePath(context, state.stroke, brushSize());
  }
  if (state.polygon.length) {
    const pixel = state.project.width / $("draft").getBoundingClientRect().width;  // one screen pixel
    context.globalAlpha = 1;
    for (const [width, style] of [[4, "#000000"], [2, color]]) {  // a dark rim keeps it visible on any frame
      context.lineWidth = width * pixel;
      context.strokeStyle = context.fillStyle = style;
      context.beginPath();
      context.moveTo(...state.polygon[0]);
      for (const point of state.polygon.slice(1)) context.lineTo(...point);
      context.stroke();
      for (const [x, y] of state.polygon) context.fillRect(x - (width + 1) * pixel, y - (width + 1) * pixel, 2 * (width + 1) * pixel, 2 * (width + 1) * pixel);
    }
  }
  context.globalAlpha = 1;
}

const brushSize = () => (Number($("brush-size").value) * state.project.width) / 640;
const activeColor = () => (state.objects.find((o) => o.id === state.active) || { color: "#ffffff" }).color;

function onPointerDown(event) {
  if (!state.project || !state.ids) return;
  const point = toImage(event);
  if (tool() === "polygon") {
    const first = state.polygon[0];
    const near = first && Math.hypot(point[0] - first[0], point[1] - first[1]) < (8 * state.project.width) / $("draft").getBoundingClientRect().width;
    if (near && state.polygon.length >= 3) closePolygon();
    else { state.polygon.push(point); drawDraft(); }
    return;
  }
  $("draft").setPointerCapture(event.pointerId);
  state.stroke = [point];
  drawDraft();
}

function onPointerMove(event) {
  if (!state.stroke) return;
  state.stroke.push(toImage(event));
  drawDraft();
}

function onPointerUp() {
  if (!state.stroke) return;
  const points = state.stroke;
  const size = brushSize();
  state.stroke = null;
  apply(rasterize((context) => strokePath(context, points, size)), tool() === "eraser" ? 0 : state.active);
}

function closePolygon() {
  if (state.polygon.length < 3) return;
  const points = state.polygon;
  state.polygon = [];
  apply(rasterize((context) => polygonPath(context, points)), state.active);
}

const TOOL_HINTS = {
  brush: "Drag to paint the selected object.",
  eraser: "Drag to erase (back to background).",
  polygon: "Click the corners; click the first one again or press Enter to fill, Esc to cancel.",
};

// ---------------------------------------------------------------- objects
function renderObjects() {
  const list = $("objects");
  list.innerHTML = "";
  for (const object of state.objects) {
    const item = document.createElement("li");
    item.className = object.id === state.active ? "active" : "";
    item.dataset.object = object.id;
    const pick = Object.assign(document.createElement("input"), { type: "radio", name: "object", checked: object.id === state.active });
    pick.addEventListener("change", () => { state.active = object.id; renderObjects(); });
    const color = Object.assign(document.createElement("input"), { type: "color", value: object.color, title: "colour" });
    color.addEventListener("change", () => { object.color = color.value; saveObjects(); renderMask(); });
    const name = Object.assign(document.createElement("input"), { type: "text", value: object.name, title: "name" });
    name.addEventListener("change", () => { object.name = name.value; saveObjects(); });
    item.append(pick, color, name);
    list.append(item);
  }
}

function mergeObjects(saved) {
  const known = new Set(state.objects.map((o) => o.id));
  for (const object of saved) if (!known.has(object.id)) state.objects.push(object);
  state.objects.sort((a, b) => a.id - b.id);
  renderObjects();
}

async function saveObjects() {
  const project = await (await api("PUT", projectUrl("/objects"), state.objects)).json();
  Object.assign(state.project, project);
}

function addObject() {
  const id = Math.max(0, ...state.objects.map((o) => o.id)) + 1;
  if (id > 254) return showStatus("at most 254 objects", true);
  state.objects.push({ id, name: `object ${id}`, color: davisColor(id) });
  state.active = id;
  renderObjects();
  saveObjects();
}

// ---------------------------------------------------------------- summary: timeline, confidence
function renderSummary() {
  const project = state.project;
  drawStrip();
  const keyframes = new Set(project.keyframes);
  const ranked = Object.entries(project.confidence)
    .map(([t, c]) => [Number(t), c])
    .filter(([t]) => !keyframes.has(t))
    .sort((a, b) => a[1] - b[1])
    .slice(0, 8);
  const list = $("least-confident");
  list.innerHTML = "";
  for (const [t, c] of ranked) {
    const button = document.createElement("button");
    button.textContent = `frame ${t} — ${(100 * c).toFixed(0)}% sure`;
    button.dataset.frame = t;
    button.addEventListener("click", () => showFrame(t));
    const item = document.createElement("li");
    item.append(button);
    list.append(item);
  }
  const stale = project.stale.length;
  $("stale-hint").textContent = project.keyframes.length
    ? stale ? `${stale} frame(s) out of date` : "every frame is up to date"
    : "paint a mask on a frame first";
  $("colorized-download").hidden = !project.colorized;
  $("colorized-download").href = projectUrl("/exports/colorized.mp4");
  renderReferences();
}

function drawStrip() {
  const project = state.project;
  const canvas = $("strip");
  const context = canvas.getContext("2d");
  const stale = new Set(project.stale);
  const keyframes = new Set(project.keyframes);
  for (let t = 0; t < project.num_frames; t++) {
    const confidence = project.confidence[t];
    let color = "#2c2f36";
    if (keyframes.has(t)) color = "#ffd23f";
    else if (stale.has(t)) color = "#666";
    else if (confidence !== undefined) color = `hsl(${Math.round(120 * Math.max(0, (confidence - 0.5) / 0.5))}, 70%, 45%)`;
    context.fillStyle = color;
    context.fillRect(t, 0, 1, 1);
  }
}

// ---------------------------------------------------------------- jobs
function follow(job) {
  state.job = job;
  document.body.dataset.job = "running";
  setProgress(job);
  const events = new EventSource(`/api/jobs/${job.id}/events`);
  events.onmessage = (message) => {
    const snapshot = JSON.parse(message.data);
    setProgress(snapshot);
    onFrames(snapshot);
    if (snapshot.state !== "running") {
      events.close();
      finished(snapshot);
    }
  };
  events.onerror = () => { events.close(); finished({ ...job, state: "failed", message: "lost the connection to the app" }); };
}

function setProgress(job) {
  $("progress").max = Math.max(1, job.total);
  $("progress").value = job.done;
  $("progress-text").textContent = `${job.kind}: ${job.done} / ${job.total}${job.state === "running" ? "" : " — " + job.state}`;
  $("cancel-job").disabled = job.state !== "running";
}

function onFrames(snapshot) {
  const project = state.project;
  let current = false;
  for (const [t, confidence] of snapshot.frames) {
    if (confidence !== null) {
      project.confidence[t] = confidence;
      project.stale = project.stale.filter((s) => s !== t);
    }
    current ||= t === state.frame;
  }
  if (snapshot.frames.length && snapshot.kind === "propagate") drawStrip();
  if (!current) return;
  if (snapshot.kind === "propagate") loadMask();
  if (snapshot.kind === "frames") $("frame").src = projectUrl(`/frames/${state.frame}.jpg?v=${++state.version}`);
  if (snapshot.kind === "colorize") showColorFrame();
}

async function finished(job) {
  state.job = null;
  showStatus(job.message || `${job.kind} ${job.state}`, job.state === "failed");
  await refreshProject();
  if (job.kind === "frames") showFrame(state.frame);
  if (job.kind === "colorize") showColorFrame();
  if (job.kind.startsWith("export ") && job.state === "done") {
    const link = $("download");
    link.href = projectUrl(`/exports/${job.kind.slice(7)}`);
    link.download = "";
    link.click();
  }
  document.body.dataset.job = "idle";
}

async function startJob(method, path) {
  if (!state.project) return;
  const job = await (await api(method, projectUrl(path))).json();
  follow(job);
}

// ---------------------------------------------------------------- colorize tab
function showColorFrame() {
  const project = state.project;
  if (!project) return;
  $("color-frame").textContent = state.frame;
  $("color-input").src = projectUrl(`/frames/${state.frame}.jpg?v=${state.version}`);
  const reference = project.references.includes(state.frame);
  $("color-caption").textContent = reference ? "reference (your colour image)" : "colorized";
  if (reference) $("color-output").src = projectUrl(`/references/${state.frame}.png?v=${Date.now()}`);
  else if (project.colorized || state.job?.kind === "colorize") $("color-output").src = projectUrl(`/colorized/${state.frame}.jpg?v=${Date.now()}`);
  else $("color-output").removeAttribute("src");
}

function renderReferences() {
  const list = $("references");
  list.innerHTML = "";
  for (const t of state.project.references) {
    const item = document.createElement("li");
    const thumb = Object.assign(document.createElement("img"), { src: projectUrl(`/references/${t}.png`), alt: "" });
    const go = Object.assign(document.createElement("button"), { textContent: `frame ${t}` });
    go.addEventListener("click", () => showFrame(t));
    const remove = Object.assign(document.createElement("button"), { textContent: "✕", title: "remove" });
    remove.addEventListener("click", async () => {
      Object.assign(state.project, await (await api("DELETE", projectUrl(`/references/${t}`))).json());
      renderSummary();
      showColorFrame();
    });
    item.append(thumb, go, remove);
    list.append(item);
  }
}

async function uploadReference(file) {
  const url = projectUrl(`/references/${state.frame}?name=${encodeURIComponent(file.name)}`);
  Object.assign(state.project, await (await api("PUT", url, file)).json());
  renderSummary();
  showColorFrame();
  showStatus(`frame ${state.frame}: reference ${file.name}`);
}

// ---------------------------------------------------------------- wiring
function selectTab(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  $("annotate").hidden = name !== "annotate";
  $("colorize").hidden = name !== "colorize";
  showColorFrame();
}

function onKey(event) {
  if (event.target.matches("input[type=text], select") || !state.project) return;
  const keys = {
    ArrowLeft: () => showFrame(state.frame - 1),
    ArrowRight: () => showFrame(state.frame + 1),
    Enter: closePolygon,
    Escape: () => { state.polygon = []; clearDraft(); },
    b: () => setTool("brush"), e: () => setTool("eraser"), p: () => setTool("polygon"),
  };
  if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
}

function setTool(name) {
  document.querySelector(`input[name=tool][value=${name}]`).checked = true;
  $("tool-hint").textContent = TOOL_HINTS[name];
  state.polygon = [];
  clearDraft();
}

function wire() {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));
  $("open-video").addEventListener("click", () => $("video-list").value && openVideo($("video-list").value));
  $("upload").addEventListener("change", (e) => e.target.files[0] && uploadVideo(e.target.files[0]));
  $("scrub").addEventListener("input", (e) => showFrame(Number(e.target.value)));
  $("color-scrub").addEventListener("input", (e) => showFrame(Number(e.target.value)));
  $("prev").addEventListener("click", () => showFrame(state.frame - 1));
  $("next").addEventListener("click", () => showFrame(state.frame + 1));
  $("show-overlay").addEventListener("change", renderMask);
  for (const radio of document.querySelectorAll("input[name=tool]")) radio.addEventListener("change", () => setTool(radio.value));
  $("draft").addEventListener("pointerdown", onPointerDown);
  $("draft").addEventListener("pointermove", onPointerMove);
  $("draft").addEventListener("pointerup", onPointerUp);
  $("draft").addEventListener("dblclick", closePolygon);
  $("add-object").addEventListener("click", addObject);
  $("clear-frame").addEventListener("click", () => state.ids && apply(Array.from(state.ids.keys()), 0));
  $("delete-keyframe").addEventListener("click", async () => {
    Object.assign(state.project, await (await api("DELETE", projectUrl(`/keyframes/${state.frame}`))).json());
    renderSummary();
    loadMask();
  });
  $("propagate").addEventListener("click", () => startJob("POST", "/propagate"));
  $("cancel-job").addEventListener("click", () => state.job && api("POST", `/api/jobs/${state.job.id}/cancel`));
  for (const button of document.querySelectorAll(".export")) button.addEventListener("click", () => startJob("POST", `/export/${button.dataset.export}`));
  $("reference-file").addEventListener("change", (e) => e.target.files[0] && uploadReference(e.target.files[0]));
  $("colorize-run").addEventListener("click", () => startJob("POST", "/colorize"));
  $("color-output").addEventListener("error", () => { $("color-output").removeAttribute("src"); });
  document.addEventListener("keydown", onKey);
  setTool("brush");
}

async function main() {
  wire();
  const config = await (await api("GET", "/api/config")).json();
  await listVideos();
  if (config.video) await openVideo(config.video);
  else showStatus("open a video of the workspace or upload one");
  document.body.dataset.ready = "true";
}

main();
