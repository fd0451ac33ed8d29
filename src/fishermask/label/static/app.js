// The labeling page: keyboard labeling on top of the JSON API (no build step).
"use strict";
// The settings: a JSON data block, not an inline script (the Content-Security-Policy allows
// none).
const FM = JSON.parse(document.getElementById("fm-config").textContent);
const client = Math.random().toString(36).slice(2, 12);  // this tab
let items = [];       // the current batch (GET /api/batch)
let pos = 0;          // the item shown
let undoStack = [];   // what this tab saved in the batch shown, newest last
let queueRound = null;
let reportedRound = null;  // the failed round whose message was shown (once, not every poll)
let queue = Promise.resolve();  // the page's actions, run one at a time in the order typed
let pending = 0;                // actions waiting in the queue
let epoch = 0;                  // bumped when a save fails: the actions queued after it are dropped
const $ = (id) => document.getElementById(id);
const KIND = { skip: "skipped", unsure: "unsure" };
// How a label came, when not typed on a page: imported, or the owner's decision of a
// disagreement (`label decide`).
const SOURCE = { import: " (imported)", decision: " (decided)" };
const ME = FM.annotator;  // who this page labels as ("owner": the owner's token)
// The owner's page decides disagreements (the Labeled view's "disagreements only", Shift + a
// class key); an annotator's has no such control, and the server refuses their decide (403).
const DECIDER = ME === "owner" && Boolean(document.getElementById("browse-disagree"));
// What to do once the batch is done: n, unless only the owner may start a round.
const ASK_OWNER = FM.owner_only_queue && ME !== "owner";
// Who started a round or batch, when a team is served (" \u2014 started by alice").
const by = (who) => (FM.team && who ? ` \u2014 started by ${who === ME ? "you" : who}` : "");
const DOWN = "the labeling server does not answer (stopped?): start `fishermask label serve` "
  + "again and open the URL it prints";
// A 401 after the server had taken this page's token: `label serve` was restarted (each start
// makes a new token unless given one), and the page holds the old one. The owner has the new
// URLs (serve printed them); an annotator has none until the owner hands them their new link.
const RESTARTED = "the labeling server no longer accepts this page's access token: it was "
  + "probably restarted with a new token; " + (ME === "owner"
    ? "open the URL that `fishermask label serve` printed (an annotator's page: give them "
      + "the new URL it printed for them)"
    : "ask the owner for your new link (`fishermask label serve` printed one for you)");
let served = false;  // the server has accepted this page's token at least once
let allSeen = false;  // every image is labeled, skipped or unsure (GET /api/status)
let unsaved = null;  // the image whose save failed last (named until a save succeeds)
// Every image of the batch shown is done and no arrow key was pressed since: the page stays on
// the last image, and a class key (s, u, Enter) must not label it again (a new label row per
// press, a different key silently changing it). An arrow key goes back to an image on purpose.
let batchDone = false;
let down = false;  // the last status poll found no server: said until a poll is answered
let classesSeen = FM.classes.join("\n");  // the class names of the last status read

// The access token travels in the Authorization header of every request (the API, images,
// the CSV download), never in a URL: a URL lands in server and proxy logs and in the browser's
// history. The page was opened with it in its address (the URL `label serve` prints); it is
// taken out of the address bar at once, and kept for this tab only (sessionStorage: a reload
// of this tab finds it, through reopen.js; no cookie, so an owner and an annotator in two tabs
// of one browser stay two people).
const TOKEN = FM.token;
try { sessionStorage.setItem("fishermask-label-token", TOKEN); } catch (e) { /* storage off */ }
if (location.search) history.replaceState(history.state, "", location.pathname + location.hash);

// A request with the token; the answer when it is 2xx, else an Error with the server's line.
async function request(method, path, body) {
  const opts = { method, headers: { "Authorization": "Bearer " + TOKEN } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {  // no answer at all ("Failed to fetch"): the server is not running
    throw new Error(DOWN);
  }
  if (r.status === 401 && served) throw new Error(RESTARTED);
  if (!r.ok) {
    const data = await r.json().catch(() => ({}));
    throw new Error(data.error || ("HTTP " + r.status));
  }
  served = true;
  return r;
}

async function api(method, path, body) {
  const r = await request(method, path, body);
  return r.json().catch(() => ({}));
}

// Show the image at `url` in `img`: fetched with the token, shown from a blob: URL, and the
// blob: URL it showed before revoked (each is revoked once its image is no longer shown). When
// the server refuses it (changed or gone since it was scanned), the frame is emptied and
// `onError` gets the server's line. A later call for the same element wins.
async function showImage(img, url, onError) {
  img.dataset.want = url;
  let blob;
  try {
    blob = URL.createObjectURL(await fetchImage(url));
  } catch (e) {
    if (img.dataset.want === url) { dropImage(img); if (onError) onError(e); }
    return;
  }
  if (img.dataset.want !== url) { URL.revokeObjectURL(blob); return; }
  const old = img.dataset.blob;
  img.src = blob;
  img.dataset.blob = blob;
  if (old) URL.revokeObjectURL(old);
}

// The next images of the batch, fetched while the one shown is being looked at, so that a
// key press shows the next at once (a photo over a slow link took a second or more each):
// url -> the promise of its bytes, for the next AHEAD images nobody has done yet; each is
// taken (and dropped) when shown, or dropped when no longer among the next.
const AHEAD = 2;
const ahead = new Map();

// The bytes of an image (or thumbnail) of the API, fetched with the token.
function imageBytes(url) {
  return request("GET", url).then((r) => r.blob());
}

function fetchImage(url) {
  const early = ahead.get(url);
  if (early) { ahead.delete(url); return early; }
  return imageBytes(url);
}

function fetchAhead() {
  const next = items.filter((x, i) => i > pos && !x.state).slice(0, AHEAD).map((x) => x.view || x.url);
  for (const url of [...ahead.keys()]) if (!next.includes(url)) ahead.delete(url);
  for (const url of next) {
    if (ahead.has(url)) continue;
    const bytes = imageBytes(url);
    bytes.catch(() => { if (ahead.get(url) === bytes) ahead.delete(url); });  // asked again when shown
    ahead.set(url, bytes);
  }
}

// Empty `img` and revoke its blob: URL (its image is no longer shown).
function dropImage(img) {
  delete img.dataset.want;
  if (img.dataset.blob) URL.revokeObjectURL(img.dataset.blob);
  delete img.dataset.blob;
  img.removeAttribute("src");
}

// The CSV download: fetched with the token, saved from a blob: URL (a plain link would need
// the token in its URL), the URL revoked once the browser has taken the file.
async function downloadCsv() {
  try {
    const r = await request("GET", "/api/export.csv");
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = "labels.csv";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);  // the download has its bytes by then
    say("downloaded labels.csv", false, "both");
  } catch (e) { say("download failed: " + e.message, true, "both"); }
}

// Run fn after every earlier action has finished. Keys typed faster than the server answers
// are queued, not dropped: each applies to the image shown when its turn comes, as if typed
// one at a time (a dropped key would make the next one label the wrong image).
function act(fn) {
  const e = epoch;
  pending += 1;
  queue = queue
    .then(async () => {
      pending -= 1;
      if (e === epoch) await fn();
    })
    .catch((err) => say(err.message, true, "both"));
}

// The message line: each view (the batch, the Labeled view) has its own, shown while that view
// is ("new batch ready" said in the Labeled view is read on coming back to the batch; a fix's
// "saved" does not linger over the batch). `where`: "batch", "labeled", or "both" for what
// concerns the whole page (the server down, a round failed, a download); the view shown when
// omitted.
const messages = { batch: ["", false], labeled: ["", false] };
// "1 image", "2 images": a count and its noun, plural unless the count is 1 (as
// fishermask.text.counted).
function counted(n, noun, plural) {
  return `${n} ${n === 1 ? noun : plural || noun + "s"}`;
}

function say(text, error, where) {
  for (const v of where === "both" ? ["batch", "labeled"] : [where || view]) {
    messages[v] = [text, Boolean(error)];
    // a message for the other view marks its tab (a dot) until that view is shown
    if (v !== view) $(v === "batch" ? "tab-batch" : "tab-labeled").classList.add("news");
  }
  showMessage();
}

function showMessage() {
  const [text, error] = messages[view];
  $(view === "batch" ? "tab-batch" : "tab-labeled").classList.remove("news");
  const m = $("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

async function loadBatch() {
  const b = await api("GET", "/api/batch");
  // z undoes only what was saved in the batch shown: an image of an earlier batch is not on
  // the page any more, so its label would vanish where it cannot be seen or given again
  if (b.round_id !== queueRound) undoStack = [];
  items = b.items;
  queueRound = b.round_id;
  $("mode").textContent = b.mode + by(b.started_by);
  $("mode").title = $("mode").textContent;  // the line shows two lines of it; a click all
  const first = items.findIndex((it) => !it.state);
  pos = first >= 0 ? first : 0;
  batchDone = items.length > 0 && first < 0;
  show();
}

// Size the batch's image to its frame, its shape kept: a panorama as wide as the frame (it was
// stretched to the frame's height), a small image enlarged with sharp pixels, a large one made
// smaller smoothly; the corner says the file's own size (the page shows a copy of at most
// 1 024 pixels a side) and how much larger or smaller it is shown.
const FRAME_MARGIN = 10;  // pixels of the frame left around the image
// "actual size": the image shown is the file itself at its own size, scrolled in the frame
// (a 4000x300 panorama was a 13-pixel band on a phone); back to the fit on the next image
let zoomed = false;

function fitImage() {
  const img = $("image"), it = items[pos];
  const nw = img.naturalWidth, nh = img.naturalHeight;
  if (!img.getAttribute("src") || !nw || !nh || !it) { $("dims").hidden = true; return; }
  const frame = $("frame");
  if (!frame.clientWidth) return;  // hidden (the Labeled view): sized when shown again
  const w = frame.clientWidth - 2 * FRAME_MARGIN, h = frame.clientHeight - 2 * FRAME_MARGIN;
  const width = it.width || nw, height = it.height || nh;
  const fit = Math.min(w / nw, h / nh);
  const zoomable = (nw * fit) / width < 0.95;  // fitted, it is shown smaller than it is
  if (!zoomable) zoomed = false;
  const scale = zoomed ? Math.max(fit, width / nw) : fit;
  img.style.width = `${Math.round(nw * scale)}px`;
  img.style.height = `${Math.round(nh * scale)}px`;
  img.classList.toggle("enlarged", scale > 1);
  const shown = (nw * scale) / width;  // of the file's own size
  $("dims-text").textContent = `${width} \u00d7 ${height} px` + (shown > 1.05
    ? `, shown ${shown < 10 ? shown.toFixed(1) : Math.round(shown)}\u00d7 larger`
    : shown < 0.95 ? `, shown at ${Math.max(1, Math.round(100 * shown))} %` : "");
  $("dims").hidden = false;
  $("zoom").hidden = !zoomable;
  $("zoom").textContent = zoomed ? "fit to frame" : "actual size";
  frame.classList.toggle("zoomable", zoomable);
  frame.classList.toggle("zoom", zoomed);
}

// The batch's image `it` from `url` (its page copy, or the file itself at actual size); an
// image the server will not show is said, while it is still the one on screen, and kept in
// `it.unshown` (the server's line) until it is asked for again: save() labels no image that
// nobody could see.
function showBatchImage(it, url) {
  delete it.unshown;
  showImage($("image"), url, (e) => {
    it.unshown = e.message;
    if (items[pos] === it) say(`cannot show ${it.path}: ${e.message}`, true, "batch");
  });
}

function toggleZoom() {
  const it = items[pos];
  if (!it || (!zoomed && $("zoom").hidden)) return;
  zoomed = !zoomed;
  // actual size: the file, or a PNG of its own size when a browser does not draw it (TIFF)
  showBatchImage(it, zoomed ? it.actual || it.url : it.view || it.url);
  if (!zoomed) $("frame").scrollTo(0, 0);
  fitImage();
}

// An action's word, and who gave it when that was someone else: "cat \u2014 by bob".
function what(state) {
  const word = state.kind === "label" ? state.label : state.kind;
  return state.by && state.by !== ME ? `${word} \u2014 by ${state.by}` : word;
}

function show() {
  document.querySelectorAll("button.class").forEach((b) => b.classList.remove("guess", "chosen"));
  if (!items.length) {
    dropImage($("image"));
    $("position").textContent = allSeen
      ? "nothing left to label: every image is labeled, skipped or unsure (revisit brings back "
        + "those set aside; download the labels in the side panel)"
      : "the batch is empty: ask for the next batch (n)";
    $("path").textContent = ""; $("guesses").textContent = "";
    return;
  }
  const it = items[pos];
  if ($("image").dataset.imageId !== String(it.image_id) || !$("image").dataset.want) {
    // an image the server will not show (changed or gone since it was scanned: 409/403/404)
    // would be a blank frame: say why, with the server's fix
    zoomed = false;
    showBatchImage(it, it.view || it.url);
  }
  fetchAhead();
  $("image").dataset.imageId = it.image_id;
  if ($("image").alt !== `image to label: ${it.path}`) $("dims").hidden = true;  // till it loads
  $("image").alt = `image to label: ${it.path}`;
  const done = items.filter((x) => x.state).length;
  $("position").textContent = `image ${pos + 1} of ${items.length} in this batch (${done} done)`;
  const earlier = it.earlier ? ` \u2014 earlier: ${KIND[it.earlier.kind] || it.earlier.label}` : "";
  $("path").textContent = it.path + (it.state ? ` \u2014 ${what(it.state)}` : earlier);
  if ($("batch-disagree")) {  // the owner's page: who gave which label of a disagreement
    const d = it.disagreement;
    $("batch-disagree").hidden = !d;
    $("batch-disagree").textContent = d ? disputeSaid(d) + (d.status === "open"
      ? " \u2014 the Labeled view's \"disagreements only\" decides it" : "") : "";
  }
  $("guesses").textContent = it.guesses.length
    ? "model: " + it.guesses.map((g) => `${g.label} ${(100 * g.prob).toFixed(0)}%`).join(", ")
    : "model: no guess yet";
  const guess = it.guesses.length ? it.guesses[0].label : null;
  document.querySelectorAll("button.class").forEach((b) => {
    if (b.dataset.label === guess) b.classList.add("guess");
    if (it.state && it.state.kind === "label" && it.state.label === b.dataset.label) b.classList.add("chosen");
  });
}

function advance() {
  const next = items.findIndex((x, i) => i > pos && !x.state);
  const any = items.findIndex((x) => !x.state);
  if (next >= 0) pos = next; else if (any >= 0) pos = any;
  batchDone = next < 0 && any < 0;  // every item of the batch is done
  show();
  return batchDone;
}

async function save(kind, label) {
  if (!items.length) return;
  if (batchDone) {
    say("the batch is done: nothing labeled. " + (ASK_OWNER ? "Ask the owner for the next batch"
      : "Press n for the next batch") + ", or go back with \u2190 (\u2192) to an image to change "
      + "its label", false, "batch");
    return;
  }
  const it = items[pos];
  if (kind === "label" && it.unshown) {
    // a class key (or Enter, a class button) on an image the server would not show (deleted or
    // changed since the scan) labeled it blind; skip and unsure still set it aside
    say(`not labeled: ${it.path} could not be shown, and a label needs the image seen: `
      + it.unshown, true, "batch");
    return;
  }
  const body = { image_id: it.image_id, kind, client };
  if (kind === "label") body.label = label;
  try {
    const r = await api("POST", "/api/labels", body);
    unsaved = null;
    it.state = { label_id: r.label_id, kind, label: kind === "label" ? label : null, by: r.by };
    // the same label of one's own again writes nothing: z must not undo the label it repeats
    if (!r.already) undoStack.push({ label_id: r.label_id, pos, path: it.path, what: kind === "label" ? label : kind });
    const done = advance();
    say(`${r.already ? "already so, nothing written" : "saved"}: ${it.path} \u2192 ${kind === "label" ? label : kind}`
      + (done ? ". Batch done: " + (ASK_OWNER ? "ask the owner for the next batch"
        : "press n (next batch) to retrain and get the next one") : ""), false, "batch");
  } catch (e) {
    notSaved(it.path, e, "batch");
  } finally {
    refreshStatus();
  }
}

// A label that did not save: said with why, kept as the unsaved one, and the keys typed after
// it dropped (they were meant for the images after it).
function notSaved(path, e, where) {
  const dropped = pending;
  epoch += 1;
  unsaved = path;
  say(`not saved: ${path}: ${e.message}`
    + (dropped ? ` (the ${counted(dropped, "key")} typed after it ${dropped === 1 ? "was" : "were"} ignored)` : ""), true, where);
}

async function undo() {
  const last = undoStack.pop();
  if (!last) { say("nothing to undo in this batch (in this tab)", false, "batch"); return; }
  try {
    await api("POST", "/api/undo", { label_id: last.label_id });
    say(`undone: ${last.path} \u2192 ${last.what}`, false, "batch");
    await loadBatch();
    pos = Math.min(last.pos, items.length - 1);
    show();
  } catch (e) { say("undo failed: " + e.message, true, "batch"); }
  refreshStatus();
}

async function nextBatch() {
  try {
    await api("POST", "/api/next");
    say("retraining and choosing the next batch; keep labeling meanwhile", false, "batch");
  } catch (e) { say(e.message, true, "batch"); }
  refreshStatus();
}

// Queue the images skipped or unsure as the batch (it replaces the one shown); the next
// batch ("n") is chosen by the strategy as usual.
async function revisit() {
  try {
    const r = await api("POST", "/api/revisit", { kinds: ["unsure", "skipped"] });
    if (!r.queued) { say("nothing to revisit: no image is skipped or unsure", false, "batch"); return; }
    await loadBatch();
    say(`revisiting ${counted(r.queued, "image")} (${r.unsure} unsure, ${r.skipped} skipped), oldest first:`
      + " label them with the usual keys; n asks for the next batch as usual", false, "batch");
  } catch (e) { say(e.message, true, "batch"); }
  refreshStatus();
}

// The states of the batch shown, others' saves included (two people on one batch), merged
// without reloading it. When the image shown was done by someone else meanwhile, the page moves
// to the next image no one has done and drops the keys queued before the move (they were
// typed while the other image was shown).
async function refreshBatchState() {
  const b = await api("GET", "/api/batch");
  if (b.round_id !== queueRound) return;  // a new batch: refreshStatus loads it
  const fresh = new Map(b.items.map((x) => [x.image_id, x]));
  const shown = items[pos];
  const wasOpen = shown && !shown.state;
  let changed = false;
  for (const it of items) {
    const n = fresh.get(it.image_id);
    if (n && (JSON.stringify(n.state) !== JSON.stringify(it.state)
      || JSON.stringify(n.disagreement) !== JSON.stringify(it.disagreement))) {
      it.state = n.state; it.earlier = n.earlier; it.disagreement = n.disagreement; changed = true;
    }
  }
  if (wasOpen && shown.state && shown.state.by !== ME && view !== "batch") {
    advance();  // silently: the keys queued now are the Labeled view's, not this image's
  } else if (wasOpen && shown.state && shown.state.by !== ME) {
    const dropped = pending;
    epoch += 1;
    const done = advance();
    say(`${shown.path}: done by ${shown.state.by} (${shown.state.kind === "label" ? shown.state.label : shown.state.kind}); `
      + (done ? "every image of this batch is done: " + (ASK_OWNER ? "ask the owner for the next batch"
        : "press n for the next batch") : "moved on to the next image no one has done")
      + (dropped ? ` (the ${counted(dropped, "key")} typed meanwhile ${dropped === 1 ? "was" : "were"} ignored)` : ""), false, "batch");
  } else if (changed) show();
}

async function refreshStatus() {
  let s;
  try { s = await api("GET", "/api/status"); } catch (e) {
    // the poll must not hide that a save failed: say which image is still to save
    down = e.message === DOWN;
    say(e.message + (unsaved ? ` \u2014 not saved: ${unsaved}` : ""), true, "both");
    return;
  }
  if (down) {
    // `label serve` is back with this page's token (a fixed --token): "does not answer" would
    // now be wrong, and would send the user to start a second server; the unsaved image is
    // still named, as it is still to label
    down = false;
    say("the labeling server answers again" + (unsaved
      ? ` \u2014 not saved: ${unsaved}: label it again` : ""), Boolean(unsaved), "both");
    // an image asked for while it was down is asked for again (till then it cannot be labeled)
    const it = items[pos];
    if (it && it.unshown) { zoomed = false; showBatchImage(it, it.view || it.url); }
  }
  // `label config --add-class/--rename-class/--remove-class` since this page was loaded: its
  // class keys are the old ones (a label of a class renamed or removed since is refused,
  // nothing saved). Said on the message line, and in a notice above the view that no later
  // message replaces, until the page is reloaded. The keys are not redrawn in place: after a
  // removal they shift, and a key pressed from habit would give another class.
  if (s.classes && s.classes.join("\n") !== classesSeen) {
    classesSeen = s.classes.join("\n");
    const text = `the project's classes changed since this page was loaded (now: `
      + `${s.classes.join(", ")}): reload the page for their keys`;
    say(text, true);
    $("stale-text").textContent = text;
    $("stale").hidden = FM.classes.join("\n") === classesSeen;  // changed back: nothing stale
  }
  const total = s.budget || s.images;
  const seen = s.labeled + s.skipped + s.unsure >= s.images;
  if (seen !== allSeen) { allSeen = seen; if (!items.length) show(); }
  $("budget-bar").style.width = `${Math.min(100, (100 * s.labeled) / Math.max(total, 1))}%`;
  $("counts").textContent = `${s.labeled} labeled of ${s.budget ? "a budget of " + s.budget : s.images + " images"}`
    + (s.budget && s.labeled >= s.budget ? " (budget reached)" : "")
    + ` \u00b7 ${s.skipped} skipped \u00b7 ${s.unsure} unsure`;
  $("progress-text").textContent = `${s.labeled} / ${total} labeled`;
  // only `label scan` adds the files put in the folder later: say so when there are some
  $("new-files").hidden = !s.new_files_hint;
  $("new-files").textContent = s.new_files_hint || "";
  $("set-aside").hidden = !(s.unsure || s.skipped);
  $("set-aside-counts").textContent = `unsure: ${s.unsure}, skipped: ${s.skipped}`;
  const team = Object.entries(s.annotators || {});
  $("team").hidden = !team.some(([name]) => name !== "owner");
  $("team-counts").textContent = team.map(([name, c]) => `${name} ${c.labeled}`).join(" \u00b7 ")
    + ` \u00b7 disagreements: ${s.disagreements}`
    + (s.decided ? ` (${s.decided} more decided by the owner)` : "");
  // the owner's "disagreements only": with a team, or once annotators' labels differ
  if (DECIDER) $("browse-disagree-box").hidden = !(FM.team || s.disagreements || s.decided);
  const max = Math.max(1, ...Object.values(s.per_class));
  $("chart").innerHTML = "";
  for (const [name, n] of Object.entries(s.per_class)) {
    const row = document.createElement("div");
    row.className = "chartrow";
    row.innerHTML = `<span class="name"></span><div class="bar"><div></div></div><span class="n"></span>`;
    row.querySelector(".name").textContent = name;
    row.querySelector(".name").title = name;  // one line, cut short: the whole name on hover
    row.querySelector(".bar > div").style.width = `${(100 * n) / max}%`;
    row.querySelector(".n").textContent = n;
    $("chart").appendChild(row);
  }
  const a = s.accuracy;
  const estimating = s.estimating !== null && s.estimating !== undefined
    ? `estimating the accuracy of round ${s.estimating}\u2026` : "";
  const shown = a && a.accuracy !== null && a.accuracy !== undefined
    ? `held-out accuracy ${(100 * a.accuracy).toFixed(1)}% (95% interval ${(100 * a.low).toFixed(0)}\u2013${(100 * a.high).toFixed(0)}%, ${a.method}, ${a.n_labels} labels)`
    // the round being estimated says "being estimated": the line after it says so already
    : (a && !(estimating && a.estimating) ? a.method : "");
  $("accuracy").textContent = [shown, estimating].filter(Boolean).join(" \u00b7 ")
    || "no accuracy estimate yet";
  drawHistory(s.history || []);
  queuePolicy(s);
  checkState(s);
  const r = s.round;
  $("training").hidden = !s.training;
  if (s.training && r) {
    $("training-phase").textContent = `round ${r.id}: ${r.phase}${by(r.started_by)}`;
    $("training-bar").style.width = `${r.total ? (100 * r.done) / r.total : 0}%`;
  } else if (r && (r.status === "failed" || r.status === "interrupted") && reportedRound !== r.id) {
    reportedRound = r.id;  // shown once: later polls must not hide the messages of new saves
    say(`round ${r.id} ${r.status}${r.message ? ": " + r.message : ""}`, true, "both");
  }
  if (s.queue_round !== queueRound && !s.training) {
    act(async () => {  // after the saves already typed, which belong to the batch shown
      if (s.queue_round === queueRound) return;
      await loadBatch();
      say("new batch ready" + by(s.queue_started_by), false, "batch");
    });
  } else if (s.queue_round === queueRound && pending === 0) {
    act(refreshBatchState);  // after the saves typed, so their own states are not stale
  }
}

// Whether this page may start the next round or a revisit now (the server's rule: the owner
// any time, an annotator once every image of the batch is done, or never under
// --owner-only-queue): the controls disabled with the reason. The n key still asks the server,
// which answers with the same reason.
// The held-out accuracy of every estimated round against the labels it trained on, with its
// 95 % interval: whether more labels still pay (a curve that flattens within its intervals
// says the next labels buy little with this model). Drawn from two rounds on, again only
// when the rounds change.
let historyDrawn = "";

function drawHistory(points) {
  const key = JSON.stringify(points);
  if (key === historyDrawn) return;
  historyDrawn = key;
  $("history").hidden = points.length < 2;
  const svg = $("history-plot");
  svg.replaceChildren();
  if (points.length < 2) return;
  const NS = "http://www.w3.org/2000/svg";
  const el = (name, attrs, text) => {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  const pct = (v) => (100 * v).toFixed(1);
  const [L, R, T, B] = [34, 250, 8, 96];  // the plot's box in the 260 x 120 view
  const x0 = Math.min(...points.map((p) => p.labels));
  const x1 = Math.max(...points.map((p) => p.labels));
  let y0 = Math.floor(10 * Math.min(...points.map((p) => p.low))) / 10;
  let y1 = Math.ceil(10 * Math.max(...points.map((p) => p.high))) / 10;
  if (y1 - y0 < 0.2) { y0 = Math.max(0, y0 - 0.1); y1 = Math.min(1, y0 + 0.2); }
  const X = (v) => (x1 === x0 ? (L + R) / 2 : L + ((v - x0) / (x1 - x0)) * (R - L));
  const Y = (v) => B - ((v - y0) / (y1 - y0)) * (B - T);
  el("line", { x1: L, y1: B, x2: R, y2: B, class: "axis" });
  el("line", { x1: L, y1: T, x2: L, y2: B, class: "axis" });
  el("text", { x: L - 3, y: T + 4, "text-anchor": "end" }, `${pct(y1).replace(".0", "")}%`);
  el("text", { x: L - 3, y: B, "text-anchor": "end" }, `${pct(y0).replace(".0", "")}%`);
  el("text", { x: L, y: B + 13, "text-anchor": "start" }, `${x0}`);
  el("text", { x: R, y: B + 13, "text-anchor": "end" }, `${x1} labels`);
  for (const p of points) {
    el("line", { x1: X(p.labels), y1: Y(p.low), x2: X(p.labels), y2: Y(p.high), class: "interval" });
  }
  el("polyline", { points: points.map((p) => `${X(p.labels)},${Y(p.accuracy)}`).join(" "), class: "curve" });
  const said = [];
  for (const p of points) {
    const line = `round ${p.round}: ${pct(p.accuracy)}% (${pct(p.low)}\u2013${pct(p.high)}%) `
      + `with ${p.labels} labels, ${p.method}`;
    said.push(line);
    el("circle", { cx: X(p.labels), cy: Y(p.accuracy), r: 3, class: "point" });
    // a point's line on hover (its title) and under the chart on a tap or click: a finger
    // has no hover, and a 3-unit dot is no target for it. A control of its own, reached
    // with Tab and told with Enter or Space (Tab passed the points by), named for what it is
    const hit = el("circle", { cx: X(p.labels), cy: Y(p.accuracy), r: 10, class: "hit",
      tabindex: "0", role: "button",
      "aria-label": `round ${p.round}: held-out accuracy ${pct(p.accuracy)}% (95% interval `
        + `${pct(p.low)}\u2013${pct(p.high)}%) with ${p.labels} labels, ${p.method}` });
    const t = document.createElementNS(NS, "title");
    t.textContent = line;
    hit.appendChild(t);
    const tell = () => { $("history-said").textContent = line; };
    hit.addEventListener("click", tell);
    hit.addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter" && ev.key !== " ") return;
      // the point's key: Enter must not confirm the image's guess, Space not scroll
      ev.preventDefault();
      ev.stopPropagation();
      tell();
    });
  }
  // a screen reader reads the rounds, not only the chart's name
  svg.setAttribute("aria-label", `held-out accuracy by labels: ${said.join("; ")}`);
  if (!said.includes($("history-said").textContent)) $("history-said").textContent = "";
}

function queuePolicy(s) {
  const you = s.you || { can_queue: true, why: null };
  // the owner of a team may replace a batch the annotators are on: said on hover, not refused
  const warn = FM.team && you.can_queue && s.batch_left
    ? `${counted(s.batch_left, "image")} of this batch not done yet: this replaces the batch the `
      + "annotators are on (those images go back to the pool)"
    : "";
  const titles = { "next-batch": "retrain and choose the next batch",
    revisit: "queue the images skipped or unsure as the batch" };
  for (const id of ["next-batch", "revisit"]) {
    $(id).disabled = !you.can_queue;
    $(id).title = you.why || warn || titles[id];
  }
  $("queue-why").textContent = you.why || "";
  $("queue-why").hidden = !you.why;
}

// The label check (POST /api/check; GET /api/status's `check`): the Labeled view's button,
// the progress of a running check (started from any page or `label check`), and the result of
// the latest finished one with the warning when its models are too weak for the flags. When a
// check ends the Labeled view is read again (its ranking and flags) and its message line says
// how it ended.
let checkSeen = undefined;  // [id, status] of the newest check at the last poll
function checkState(s) {
  const c = s.check;
  const you = s.you || {};
  const running = Boolean(c && c.status === "running");
  const res = c ? c.result : null;
  const btn = $("check-start");
  btn.disabled = running || Boolean(s.training) || you.can_check === false;
  btn.title = you.why_check
    || (running ? `label check ${c.id} is running` : "")
    || (s.training ? "a retrain is running: check the labels when it is done" : "")
    || "train a few models, each without part of the labels, and flag the labels they find "
      + "likely wrong (the ranking then uses their probabilities)";
  $("check-progress").hidden = !running;
  let line = "";
  if (running) {
    line = `label check ${c.id} running${by(c.started_by)} (${c.folds} models): ${c.phase}`;
    $("check-bar").style.width = `${c.total ? (100 * c.done) / c.total : 0}%`;
  } else if (res) {
    line = `label check of ${res.when} (${res.folds} models): ${res.line}`;
  }
  if (c && (c.status === "failed" || c.status === "interrupted")) {
    line = `label check ${c.id} ${c.status}${c.message ? ": " + c.message : ""}`
      + (res ? `; shown: the check of ${res.when} (${res.line})` : "");
  }
  $("check-line").textContent = line;
  $("check-weak").hidden = !(res && res.weak && !running);
  $("check-weak").textContent = res && res.weak ? res.weak : "";
  const now = c ? [c.id, c.status] : null;
  const was = checkSeen;
  checkSeen = now;
  if (was === undefined || !now || (was && was[0] === now[0] && was[1] === now[1])) return;
  if (now[1] === "running") return;
  if (was && was[0] === now[0] && was[1] !== "running") return;
  // a check seen running has ended (or ended between two polls): say how, once
  if (now[1] === "done" && res && res.id === now[0]) {
    say(`label check ${now[0]} done: ${res.line}`
      + (res.weak ? ` — ${res.weak}` : "; the flagged labels are marked ⚑"), Boolean(res.weak),
      "labeled");
  } else if (now[1] !== "done") {
    say(`label check ${now[0]} ${now[1]}${c.message ? ": " + c.message : ""}`, true, "labeled");
  }
  if (view === "labeled") act(loadLabeled);  // its ranking and flags
}

async function startCheck() {
  try {
    const r = await api("POST", "/api/check");
    say(`label check ${r.check_id} started (${r.folds} models, each without part of the labels);`
      + " keep labeling meanwhile", false, "labeled");
  } catch (e) { say("label check not started: " + e.message, true, "labeled"); }
  refreshStatus();
}

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  // keys typed into the Labeled view's filters choose their options, into a class finder
  // find a class (its own handler, findKey)
  if (ev.target && (ev.target.tagName === "SELECT" || ev.target.tagName === "INPUT")) return;
  // Enter on a control reached with Tab (a tab, "revisit", the help) is that control's: it
  // confirmed the model's guess instead, so a keyboard user opening the Labeled tab labeled
  // the image shown (a mouse click gives the focus back to the page, see below)
  if (ev.key === "Enter" && ev.target instanceof Element
    && ev.target.closest("button, a, summary, [role=button]")) return;
  // Every letter key is lower case (classes past 0, s, u, z, n): Caps Lock or Shift must not
  // make a key do nothing, so a letter is matched whatever its case. Named keys (Enter,
  // ArrowLeft) are left as they are.
  const k = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  if (k === "/" && finder()) { ev.preventDefault(); finder().focus(); return; }
  if (view === "labeled") { browseKey(ev, k); return; }
  const btn = [...document.querySelectorAll("button.class")].find((b) => b.dataset.key === k);
  if (btn) { ev.preventDefault(); act(() => save("label", btn.dataset.label)); return; }
  // Only Enter confirms: Space is left to the browser (scrolling), so a user scrolling the
  // page does not label the image shown.
  if (k === "Enter") {
    ev.preventDefault();
    act(() => {  // the guess of the image shown when this key's turn comes
      const it = items[pos];
      if (it && it.guesses.length) return save("label", it.guesses[0].label);
      say("no model guess to confirm: press a class key", false, "batch");
    });
  } else if (k === "s") act(() => save("skip"));
  else if (k === "u") act(() => save("unsure"));
  else if (k === "z" || k === "Backspace") { ev.preventDefault(); act(undo); }
  else if (k === "ArrowRight") act(() => { batchDone = false; pos = Math.min(pos + 1, items.length - 1); show(); });
  else if (k === "ArrowLeft") act(() => { batchDone = false; pos = Math.max(pos - 1, 0); show(); });
  else if (k === "n") act(nextBatch);  // after the labels typed before it, so it trains on them
  else noSuchKey(k, "batch");
}

// A digit or a letter no class has (4 of a project of three classes, k of 25) did nothing, and
// a labeler could not tell a key unknown from a page stuck: say so, with the keys there are.
function noSuchKey(k, where) {
  if (!/^[0-9a-z]$/.test(k)) return;
  const keys = [...document.querySelectorAll("button.class")].map((b) => b.dataset.key).filter(Boolean);
  say(`no class has the key ${k}: the class keys are ${keys.join(" ")} (on the buttons)`, false, where);
}

// The "Labeled" view: the labels given, a page at a time (GET /api/labeled), likely mistakes
// first once a model is trained (else newest first, and the note says why). A class key (or
// button) fixes the selected image's label with POST /api/labels, the save of the batch view:
// a new row of the label history under the same rules (the token's annotator; z undoes this
// tab's fixes, and an annotator only their own). The grid is read again when the view is
// opened, a filter or the page changes; a fix updates its tile in place.
const PER_PAGE = 24;
let view = "batch";
const browse = { page: 1, pages: 1, total: 0, items: [], sel: 0, undo: [] };

function setView(v) {
  view = v;
  $("labeler").hidden = v !== "batch";
  $("browse").hidden = v !== "labeled";
  $("browse-bar").hidden = v !== "labeled";
  showMessage();
  for (const [id, name] of [["tab-batch", "batch"], ["tab-labeled", "labeled"]]) {
    $(id).classList.toggle("active", v === name);
    $(id).setAttribute("aria-selected", String(v === name));
  }
  // the view in the address (#labeled), so a reload of the tab comes back to it
  history.replaceState(history.state, "", location.pathname + (v === "labeled" ? "#labeled" : ""));
  if (v === "labeled") act(loadLabeled);
  else fitImage();  // the window may have changed size while the frame was hidden
}

async function loadLabeled() {
  const q = new URLSearchParams({ page: browse.page, per_page: PER_PAGE, sort: $("browse-sort").value });
  if ($("browse-class").value) q.set("label", $("browse-class").value);
  if ($("browse-by").value) q.set("by", $("browse-by").value);
  if ($("browse-flagged").checked) q.set("flagged", "true");
  if (DECIDER && $("browse-disagree").checked) q.set("disagreements", "open");
  // the first page after a round waits for the new model to score every label: seconds of
  // a blank grid that looked like no labels at all
  if (!browse.items.length) $("browse-note").textContent = "reading the labeled images ...";
  const r = await api("GET", "/api/labeled?" + q);
  if (!r.items.length && r.total && browse.page > r.pages) {  // fewer pages than before
    browse.page = r.pages;
    await loadLabeled();
    return;
  }
  Object.assign(browse, { pages: r.pages, total: r.total, items: r.items, model: r.model });
  browse.sel = Math.max(0, Math.min(browse.sel, r.items.length - 1));
  $("browse-note").textContent = r.note;
  // who gave the labels: a filter once someone besides the owner did (or may)
  const by = $("browse-by");
  const chosen = by.value;
  by.length = 1;
  for (const name of r.annotators) by.add(new Option(name === ME ? `${name} (you)` : name, name));
  by.value = r.annotators.includes(chosen) ? chosen : "";
  $("browse-by-box").hidden = r.annotators.length < 2;
  renderGrid();
}

const pct = (p) => `${(100 * p).toFixed(0)}%`;
// A time (seconds since the epoch) as every time the tool shows (fishermask.text.utc_clock):
// "23:58 UTC" today, "2026-11-30 23:58 UTC" another day; UTC and said so, as a check's time
// the server words, since a team's pages may be opened in other time zones.
const when = (t) => {
  const at = new Date(1000 * t).toISOString();  // 2026-11-30T23:58:07.123Z
  const day = at.slice(0, 10);
  return `${day === new Date().toISOString().slice(0, 10) ? "" : `${day} `}${at.slice(11, 16)} UTC`;
};

// The grid's thumbnails as blob: URLs, by thumbnail URL, for the tiles of the page shown: a
// fix redraws the grid without fetching them again; those of a page left are revoked.
const thumbs = new Map();
let thumbsShown = new Set();

async function showThumb(img, url) {
  let blob = thumbs.get(url);
  if (!blob) {
    try {
      blob = URL.createObjectURL(await imageBytes(url));
    } catch (e) {
      img.title = `cannot show ${img.alt}: ${e.message}`;
      return;
    }
    if (thumbs.has(url) || !thumbsShown.has(url)) {  // fetched twice, or the page was left
      URL.revokeObjectURL(blob);
      if (!thumbs.has(url)) return;
      blob = thumbs.get(url);
    } else thumbs.set(url, blob);
  }
  img.src = blob;
}

function renderGrid() {
  const grid = $("grid");
  thumbsShown = new Set(browse.items.map((it) => it.thumb));
  for (const [url, blob] of thumbs) {
    if (!thumbsShown.has(url)) { URL.revokeObjectURL(blob); thumbs.delete(url); }
  }
  grid.textContent = "";
  browse.items.forEach((it, i) => {
    const tile = document.createElement("button");
    tile.type = "button";
    // the label check's rule finds this label likely wrong (not after a fix here)
    const flagged = it.flagged && !it.was;
    // labeled after the latest model was trained: its probability is from a model that did
    // not see this label (a fix made here included)
    const newer = it.newer_than_model === true;
    tile.className = "tile" + (it.was ? " fixed" : "") + (flagged ? " flagged" : "")
      + (newer ? " newer-label" : "");
    tile.dataset.imageId = it.image_id;
    const img = document.createElement("img");
    img.alt = it.path;
    showThumb(img, it.thumb);  // a preview of at most 160 px, not the whole file
    const lab = document.createElement("span");
    lab.className = "lab";
    lab.textContent = shown(it) + (it.label_prob !== null ? ` ${pct(it.label_prob)}` : "");
    lab.title = lab.textContent;  // two lines at most: a long class name is cut short
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = it.was ? `fixed (was ${shown(it.was)})`
      : `by ${it.by === ME ? "you" : it.by}${SOURCE[it.source] || ""}`;
    tile.append(img, lab, meta);
    if (it.disagreement) {  // the owner's page: annotators gave different labels
      const mark = document.createElement("span");
      mark.className = "disagree";
      mark.textContent = it.disagreement.status === "open" ? "disagreement" : "decided";
      tile.classList.add(it.disagreement.status === "open" ? "disagree-open" : "disagree-decided");
      tile.append(mark);
    }
    if (newer) {
      const mark = document.createElement("span");
      mark.className = "newer";
      mark.textContent = "newer than model";
      tile.append(mark);
    }
    const round = browse.model ? ` of round ${browse.model.round}` : "";
    tile.title = it.path + (flagged ? ` \u2014 label check: likely ${it.suggested}` : "")
      + (newer ? ` \u2014 labeled after the model${round} was trained` : "");
    if (flagged) {
      const mark = document.createElement("span");
      mark.className = "flag";
      mark.textContent = `\u2691 ${it.suggested}?`;
      tile.append(mark);
    }
    tile.addEventListener("click", () => { browse.sel = i; showSelected(); });
    grid.appendChild(tile);
  });
  const filtered = $("browse-class").value || $("browse-by").value || $("browse-flagged").checked
    || (DECIDER && $("browse-disagree").checked);
  $("page-info").textContent = browse.total
    ? `page ${browse.page} of ${browse.pages} (${counted(browse.total, "labeled image")})`
    : (filtered ? "no labeled image matches these filters" : "no labeled image yet");
  $("page-prev").disabled = browse.page <= 1;
  $("page-next").disabled = browse.page >= browse.pages;
  showSelected();
}

function showSelected() {
  const it = browse.items[browse.sel];
  // a tile scrolled into view stops above the sticky footer, however tall it is now
  document.documentElement.style.setProperty("--footer", `${$("footer").offsetHeight}px`);
  document.querySelectorAll("#grid button.tile").forEach((t, i) => {
    t.classList.toggle("selected", i === browse.sel);
    if (i === browse.sel) t.scrollIntoView({ block: "nearest" });
  });
  document.querySelectorAll("button.relabel").forEach((b) => {
    b.classList.toggle("chosen", Boolean(it) && b.dataset.label === it.label);
    b.classList.toggle("guess", Boolean(it && it.guess) && b.dataset.label === it.guess.label);
  });
  if (DECIDER) {
    // (a disagreement whose current action is a skip or unsure has no label to keep)
    $("browse-decide").hidden = !(it && it.disagreement && it.label !== null);
    if (it) $("browse-decide").textContent = `decide: keep ${it.label}`;
  }
  if (!it) { $("browse-selected").textContent = ""; return; }
  const model = it.guess
    ? `; model: ${it.guess.label} ${pct(it.guess.prob)}`
      + (it.label_prob !== null && it.guess.label !== it.label ? `, ${it.label} ${pct(it.label_prob)}` : "")
      + (it.newer_than_model && it.prob_from !== "check" ? " (this label is newer than the model)" : "")
      + (it.prob_from === "check" ? " (out-of-fold: label check)" : "")
      + (it.flagged && !it.was ? `; the label check suggests ${it.suggested}` : "")
    : "";
  $("browse-selected").textContent = `${it.path} \u2014 ${shown(it)}, by ${it.by === ME ? "you" : it.by}`
    + `${SOURCE[it.source] || ""}, ${when(it.created)}${model}` + differ(it);
}

// An item's label, or what its current action is instead: "disagreements only" lists a
// disagreement whose current action is a skip or unsure too (given before those were refused
// on someone else's label).
function shown(it) {
  return it.label !== null ? it.label : (it.kind === "skip" ? "skipped" : it.kind);
}

// Who gave which label of a disagreement (the owner's page): "; disagreement (open): alice
// red, bob blue; Shift + a class key decides".
function differ(it) {
  const d = it.disagreement;
  if (!d) return "";
  return `; ${disputeSaid(d)}` + (d.status === "open" ? "; Shift + a class key decides" : "");
}

// A disagreement and its sides, as both views say it: "disagreement (open): alice red, you
// blue" or "disagreement decided by the owner: ...".
function disputeSaid(d) {
  const who = Object.entries(d.labels).map(([n, c]) => `${n === ME ? "you" : n} ${c}`).join(", ");
  return `${d.status === "open" ? "disagreement (open)" : "disagreement decided by the owner"}: ${who}`;
}

// A fix of the selected label; `decide` (the owner's page, an image whose annotators
// disagree): the owner's decision with that class, also the class it has (POST /api/labels
// with "decide"; z undoes it as a fix).
async function relabel(label, decide) {
  const it = browse.items[browse.sel];
  if (!it) { say("no labeled image selected: click one", false, "labeled"); return; }
  if (decide && !it.disagreement) {
    say(`${it.path}: its annotators do not disagree, nothing to decide (a class key fixes its `
      + "label)", false, "labeled");
    return;
  }
  if (!decide && label === it.label) { say(`${it.path} is ${label} already`, false, "labeled"); return; }
  try {
    const body = { image_id: it.image_id, kind: "label", label, client };
    if (decide) body.decide = true;
    const r = await api("POST", "/api/labels", body);
    unsaved = null;
    const was = { label: it.label, kind: it.kind, label_id: it.label_id, by: it.by, created: it.created,
      label_prob: it.label_prob, prob_from: it.prob_from, was: it.was, source: it.source,
      disagreement: it.disagreement };
    if (!r.already) browse.undo.push({ label_id: r.label_id, item: it, was });
    Object.assign(it, { label, kind: "label", label_id: r.label_id, by: r.by, created: Date.now() / 1000,
      label_prob: it.guess && it.guess.label === label ? it.guess.prob : null,
      newer_than_model: it.guess ? true : null, prob_from: null,
      was: decide && label === was.label ? it.was : it.was || was,
      source: decide ? "decision" : "human" });
    if (decide) {
      // a decision is not one of the sides (the server's word): the annotators' labels stay
      // as they were, the owner's own label included
      it.disagreement = { status: r.disagreement || "decided", labels: it.disagreement.labels };
    }
    if (browse.sel < browse.items.length - 1) browse.sel += 1;
    renderGrid();
    say(r.already ? `already so, nothing written: ${it.path} \u2192 ${label}`
      : decide ? `decided: ${it.path} \u2192 ${label} (${Object.entries(was.disagreement.labels)
        .map(([n, c]) => `${n} ${c}`).join(", ")})` : `saved: ${it.path} \u2192 ${label} (was ${shown(was)})`,
    false, "labeled");
  } catch (e) {
    notSaved(it.path, e, "labeled");
  } finally {
    refreshStatus();
  }
}

async function browseUndo() {
  const last = browse.undo.pop();
  if (!last) { say("nothing to undo in this view (in this tab)", false, "labeled"); return; }
  try {
    await api("POST", "/api/undo", { label_id: last.label_id });
    Object.assign(last.item, last.was);  // the label it had before the fix
    if (!last.was.was) delete last.item.was;
    renderGrid();
    if (DECIDER) act(loadLabeled);  // whether it is a disagreement again: the server's word
    say(`undone: ${last.item.path} is ${shown(last.was)} again`, false, "labeled");
  } catch (e) { say("undo failed: " + e.message, true, "labeled"); }
  refreshStatus();
}

// The arrows move the selection; past the first or last image, to the page before or after.
async function browseMove(step) {
  const to = browse.sel + step;
  if (to >= 0 && to < browse.items.length) { browse.sel = to; showSelected(); return; }
  const page = browse.page + step;
  if (page < 1 || page > browse.pages) return;
  browse.page = page;
  browse.sel = step > 0 ? 0 : PER_PAGE - 1;
  await loadLabeled();
}

// The class key of a key press with Shift held, by the key's place on the keyboard
// ("Digit1" is 1 whatever Shift makes of it: "!" on one layout, "+" on another).
function shiftedKey(ev) {
  const code = ev.code || "";
  if (code.startsWith("Digit")) return code.slice(5);
  if (code.startsWith("Key")) return code.slice(3).toLowerCase();
  return null;
}

function browseKey(ev, k) {
  if (DECIDER && ev.shiftKey) {
    // Shift + a class key decides the selected image's disagreement with that class; on an
    // image without one a shifted letter stays the letter (Caps Lock, Shift: a fix)
    const key = shiftedKey(ev);
    const it = browse.items[browse.sel];
    const cls = [...document.querySelectorAll("button.relabel")].find((b) => key && b.dataset.key === key);
    if (cls && it && it.disagreement) {
      ev.preventDefault();
      act(() => relabel(cls.dataset.label, true));
      return;
    }
    const plain = [...document.querySelectorAll("button.relabel")].some((b) => b.dataset.key === k);
    if (cls && it && !plain) {  // Shift + a digit: no key of its own, so say why nothing
      ev.preventDefault();
      say(`${it.path}: its annotators do not disagree, nothing to decide; the plain key `
        + `${key} (without Shift) fixes its label to ${cls.dataset.label}`, false, "labeled");
      return;
    }
  }
  const btn = [...document.querySelectorAll("button.relabel")].find((b) => b.dataset.key === k);
  if (btn) { ev.preventDefault(); act(() => relabel(btn.dataset.label)); return; }
  if (k === "Enter") {
    // "looks right": keep the label, next image. Enter confirms what is highlighted, as in a
    // batch; here that is the label given. (It took the model's guess, which under "likely
    // mistakes first" rewrote every label a reviewer meant to keep; the button still does.)
    ev.preventDefault();
    act(async () => {
      const it = browse.items[browse.sel];
      if (it) say(`kept: ${it.path} is ${shown(it)}`, false, "labeled");
      await browseMove(1);
    });
  } else if (k === "z" || k === "Backspace") { ev.preventDefault(); act(browseUndo); }
  else if (k === "ArrowRight") { ev.preventDefault(); act(() => browseMove(1)); }
  else if (k === "ArrowLeft") { ev.preventDefault(); act(() => browseMove(-1)); }
  else if (k === "s" || k === "u" || k === "n") {
    say("s, u and n work in the batch view (the Batch tab)", false, "labeled");
  } else noSuchKey(k, "labeled");
}

for (const id of ["browse-class", "browse-by", "browse-sort", "browse-flagged", "browse-disagree"]) {
  if (!$(id)) continue;  // "disagreements only": the owner's page only
  $(id).addEventListener("change", () => {
    $(id).blur();  // the keys go back to labeling
    browse.page = 1; browse.sel = 0;
    act(loadLabeled);
  });
}
$("page-prev").onclick = () => act(async () => { browse.page -= 1; browse.sel = 0; await loadLabeled(); });
$("page-next").onclick = () => act(async () => { browse.page += 1; browse.sel = 0; await loadLabeled(); });
document.querySelectorAll("button.relabel").forEach((b) =>
  b.addEventListener("click", (ev) => act(() => relabel(b.dataset.label, DECIDER && ev.shiftKey))));
if (DECIDER) {
  $("browse-decide").onclick = () => act(() => {
    const it = browse.items[browse.sel];
    if (it) return relabel(it.label, true);
    say("no labeled image selected: click one", false, "labeled");
  });
}
$("browse-guess").onclick = () => act(() => {
  const it = browse.items[browse.sel];
  if (it && it.guess) return relabel(it.guess.label);
  say("no model guess to take: press a class key", false, "labeled");
});
$("browse-undo").onclick = () => act(browseUndo);
$("check-start").onclick = () => act(startCheck);
$("tab-batch").onclick = () => setView("batch");
$("tab-labeled").onclick = () => setView("labeled");

$("export").addEventListener("click", (ev) => { ev.preventDefault(); downloadCsv(); });
// The side panel's help, closed once read, stays closed (this browser and address; open, it
// made the panel taller than a laptop's window for the rest of a session).
const HELP = "fishermask-label-help";
try { if (localStorage.getItem(HELP) === "closed") $("help").open = false; } catch (e) { /* off */ }
$("help").addEventListener("toggle", () => {
  try { localStorage.setItem(HELP, $("help").open ? "open" : "closed"); } catch (e) { /* off */ }
});

// Finding a class by name, in a project of more than ten classes (past the ten digit keys
// come letters nobody remembers, past the 32nd no key): "/" puts the cursor in the box of the
// view shown; typing leaves only the classes whose name holds what was typed (in either
// case), the best match highlighted (the name itself, then names that start with it, then a
// word of the name, then anywhere; the buttons' order among equals); arrows move the
// highlight; Enter labels with it (the batch view) or fixes the selected label (the Labeled
// view), and the box stays, empty, for the next image; Enter in the empty box is the usual
// Enter (confirm the guess, keep the label); Esc empties it and gives the keys back.
// `box`: the box whose matches these are (each view has its own; a name left typed in one
// must not answer an Enter in the other)
const found = { matches: [], at: 0, box: null };

function finder() {
  return view === "labeled" ? $("find-relabel") : $("find-class");
}

function rank(name, q) {
  const n = name.toLowerCase();
  if (n === q) return 0;
  if (n.startsWith(q)) return 1;
  if (n.split(/[\s_\-\/.]+/).some((w) => w.startsWith(q))) return 2;
  return n.includes(q) ? 3 : -1;
}

function findClasses(box) {
  const q = box.value.trim().toLowerCase();
  const buttons = [...box.parentElement.querySelectorAll("button[data-label]")];
  const ranked = [];
  buttons.forEach((b, i) => {
    const r = q ? rank(b.dataset.label, q) : 0;
    b.hidden = r < 0;
    if (r >= 0) ranked.push([r, i, b]);
  });
  ranked.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  found.matches = q ? ranked.map((e) => e[2]) : [];
  found.at = 0;
  found.box = box;
  markFound();
}

function markFound() {
  for (const b of document.querySelectorAll("button[data-label].found")) b.classList.remove("found");
  const b = found.matches[found.at];
  if (b) { b.classList.add("found"); b.scrollIntoView({ block: "nearest" }); }
}

function clearFinder(box) {
  box.value = "";
  findClasses(box);
}

function findKey(ev) {
  const box = ev.target;
  if (found.box !== box) findClasses(box);  // the other view's box was the last searched
  if (ev.key === "Escape") { ev.preventDefault(); clearFinder(box); box.blur(); return; }
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    ev.preventDefault();
    const n = found.matches.length;
    if (n) { found.at = (found.at + (ev.key === "ArrowDown" ? 1 : n - 1)) % n; markFound(); }
    return;
  }
  if (ev.key !== "Enter") return;
  ev.preventDefault();
  const q = box.value.trim();
  if (!q) { onKey({ key: "Enter", preventDefault() {} }); return; }  // the usual Enter
  const b = found.matches[found.at];
  const where = view === "labeled" ? "labeled" : "batch";
  if (!b) { say(`no class has "${q}" in its name (Esc gives the keys back)`, true, where); return; }
  const label = b.dataset.label;
  clearFinder(box);  // at once: the next image's name can be typed while this one saves
  act(() => (where === "labeled" ? relabel(label) : save("label", label)));
}

for (const id of ["find-class", "find-relabel"]) {
  const box = $(id);
  if (!box) continue;
  box.addEventListener("input", () => findClasses(box));
  box.addEventListener("focus", () => findClasses(box));  // its own matches highlighted again
  box.addEventListener("keydown", findKey);
  // the other view's box, left with a name typed, shows all its classes again
  box.addEventListener("blur", () => { if (!box.value.trim()) clearFinder(box); });
}

document.addEventListener("keydown", onKey);
$("image").addEventListener("load", fitImage);
// the file at actual size in a format the browser does not draw after all (the server sends
// a TIFF as a PNG, the other formats as they are): back to the page's copy
$("image").addEventListener("error", () => {
  if (zoomed && $("image").getAttribute("src")) {
    toggleZoom();
    say("cannot show this file at its own size: the browser does not draw its format", true, "batch");
  }
});
$("zoom").onclick = toggleZoom;
$("frame").addEventListener("click", toggleZoom);
window.addEventListener("resize", fitImage);
// A button clicked with the mouse gives the focus back to the page: a focused button takes
// Space as a click of itself, so Space (left to scrolling) labeled the next image with the
// class clicked last, or fixed the next label in the Labeled view, or skipped, or started a
// round. A click made from the keyboard (Tab, then Space: detail 0) keeps its focus.
document.addEventListener("click", (ev) => {
  const b = ev.target instanceof Element ? ev.target.closest("button") : null;
  if (b && ev.detail > 0) b.blur();
});
document.querySelectorAll("button.class").forEach((b) =>
  b.addEventListener("click", () => act(() => save("label", b.dataset.label))));
$("confirm").onclick = () => onKey({ key: "Enter", preventDefault() {} });
$("skip").onclick = () => act(() => save("skip"));
$("unsure").onclick = () => act(() => save("unsure"));
$("undo").onclick = () => act(undo);
$("prev").onclick = () => onKey({ key: "ArrowLeft", preventDefault() {} });
$("next").onclick = () => onKey({ key: "ArrowRight", preventDefault() {} });
$("next-batch").onclick = () => act(nextBatch);
$("stale-reload").onclick = () => location.reload();
$("revisit").onclick = () => act(revisit);  // after the saves typed before the click
$("mode").onclick = () => $("mode").classList.toggle("open");  // the whole line, or two lines
loadBatch().then(refreshStatus).catch((e) => say(e.message, true, "both"));
if (location.hash === "#labeled") setView("labeled");  // a reload of the Labeled view
setInterval(refreshStatus, 1500);
