// The browse page: models and their files from /ui/api/ (serving/ui.py), everything a model
// answers from TF Serving's REST API (POST /v1/models/NAME/versions/V:predict). No framework,
// nothing fetched from elsewhere. State lives in the URL hash: #model=vbpr&user=u0001&item=i3.
"use strict";

const UNKNOWN_USER = "__unknown_user__"; // contract.UNKNOWN_USER: served the mean customer
const LISTED_USERS = 300; // customers listed at once; the search narrows the rest
const LISTED_ANCHORS = 60;

const state = {
  models: [], model: null, catalogue: null, itemRow: new Map(), sheet: null,
  user: null, item: null, method: null, attention: new Map(),
};
const $ = (id) => document.getElementById(id);

// --- talking to the server -------------------------------------------------------------------

// TF Serving writes -inf scores (padding) as -Infinity, which JSON.parse refuses.
function parseServed(text) {
  return JSON.parse(text.replace(/([\[,:]\s*)-?(?:Infinity|NaN)(?=\s*[,\]}])/g, "$1null"));
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = parseServed(await response.text());
  if (!response.ok) throw new Error(body.error || `${url}: HTTP ${response.status}`);
  return body;
}

async function predict(signature, instance) {
  const model = state.model;
  const url = `/v1/models/${encodeURIComponent(model.name)}/versions/${model.version}:predict`;
  const body = JSON.stringify({ signature_name: signature, instances: [instance] });
  const answer = await getJSON(url, { method: "POST", body,
                                      headers: { "Content-Type": "application/json" } });
  return answer.predictions[0];
}

function apiURL(model, path) {
  return `api/models/${encodeURIComponent(model.name)}/${path}`;
}

function notice(message) {
  $("notice").hidden = !message;
  $("notice").textContent = message || "";
}

// --- the URL hash ----------------------------------------------------------------------------

function readHash() {
  return Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
}

function writeHash() {
  const values = { model: state.model && state.model.name, user: state.user, item: state.item,
                   method: state.method };
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) if (value) params.set(key, value);
  history.replaceState(null, "", `#${params}`);
}

// --- drawing items ---------------------------------------------------------------------------

function hue(text) {
  let hash = 0;
  for (const char of text) hash = (hash * 31 + char.charCodeAt(0)) % 360;
  return hash;
}

function thumbnail(itemId) {
  const row = state.itemRow.get(itemId);
  const layout = state.model.thumbnails;
  if (state.sheet && layout && row !== undefined) {
    const canvas = document.createElement("canvas");
    canvas.width = layout.cell_width;
    canvas.height = layout.cell_height;
    const column = row % layout.columns, line = Math.floor(row / layout.columns);
    canvas.getContext("2d").drawImage(
      state.sheet, column * layout.cell_width, line * layout.cell_height, layout.cell_width,
      layout.cell_height, 0, 0, layout.cell_width, layout.cell_height);
    canvas.className = "thumb";
    return canvas;
  }
  const category = categoryOf(itemId);
  const placeholder = document.createElement("div");
  placeholder.className = "placeholder";
  placeholder.style.background = `hsl(${hue(category)}, 45%, 62%)`;
  placeholder.textContent = (category || itemId).slice(0, 1).toUpperCase();
  return placeholder;
}

function categoryOf(itemId) {
  const row = state.itemRow.get(itemId);
  return row === undefined ? "" : state.catalogue.item_categories[row];
}

function card(itemId, { score, rank, onClick } = {}) {
  const figure = document.createElement("figure");
  figure.className = "card";
  figure.dataset.item = itemId;
  figure.append(thumbnail(itemId));
  const caption = document.createElement("figcaption");
  const id = document.createElement("span");
  id.className = "id";
  id.textContent = itemId;
  id.title = itemId;
  caption.append(id);
  const category = categoryOf(itemId);
  if (category) {
    const chip = document.createElement("span");
    chip.className = "category";
    chip.style.setProperty("--hue", hue(category));
    chip.textContent = category;
    caption.append(chip);
  }
  if (score !== undefined && score !== null) {
    const value = document.createElement("span");
    value.className = "score";
    value.textContent = `score ${Number(score).toFixed(3)}`;
    caption.append(value);
  }
  figure.append(caption);
  if (rank !== undefined) {
    const badge = document.createElement("span");
    badge.className = "rank";
    badge.textContent = `#${rank}`;
    figure.append(badge);
  }
  if (onClick) figure.addEventListener("click", guarded(() => onClick(itemId)));
  return figure;
}

function fill(container, cards, emptyText) {
  container.replaceChildren(...cards);
  if (!cards.length) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = emptyText;
    container.append(empty);
  }
}

function served(ids, scores) {
  const cards = [];
  ids.forEach((id, index) => {
    if (id) cards.push(card(id, { score: scores ? scores[index] : undefined, rank: index + 1 }));
  });
  return cards;
}

// --- models ----------------------------------------------------------------------------------

async function loadModels() {
  const { models } = await getJSON("api/models");
  state.models = models.filter((model) => !model.error && model.catalogue);
  const select = $("model");
  select.replaceChildren(...state.models.map((model) => {
    const option = document.createElement("option");
    option.value = model.name;
    const head = model.description.head || "?";
    option.textContent = `${model.name} · ${head} · v${model.version}`;
    return option;
  }));
  const skipped = models.filter((model) => model.error || !model.catalogue);
  if (!state.models.length) {
    notice("No model can be browsed: " + (skipped.map((model) => `${model.name}: ` +
           (model.error || "exported before the browse page (no catalogue)")).join("; ") ||
           "the server serves none"));
  }
}

async function selectModel(name) {
  const model = state.models.find((entry) => entry.name === name) || state.models[0];
  if (!model) return;
  state.model = model;
  $("model").value = model.name;
  state.catalogue = await getJSON(apiURL(model, "catalogue"));
  state.itemRow = new Map(state.catalogue.item_ids.map((id, row) => [id, row]));
  state.sheet = null;
  if (model.thumbnails) {
    const image = new Image();
    image.src = apiURL(model, "thumbnails.png");
    await image.decode();
    state.sheet = image;
  }
  state.attention = new Map();
  state.method = model.attention.includes(state.method) ? state.method : model.attention[0];
  state.item = null;
  showFacts(model);
  const categories = [...new Set(state.catalogue.item_categories)].sort();
  $("category").replaceChildren(...["", ...categories].map((category) => {
    const option = document.createElement("option");
    option.value = category;
    option.textContent = category || "any";
    return option;
  }));
  listUsers();
  if (isPairs()) listAnchors();
}

function isPairs() {
  return state.catalogue.head === "compatibility";
}

function showFacts(model) {
  const info = model.description;
  const facts = [info.head, info.dataset && `dataset ${info.dataset}`,
                 `${state.catalogue.user_ids.length.toLocaleString()} customers`,
                 `${state.catalogue.item_ids.length.toLocaleString()} items`,
                 info.dim && `d=${info.dim}`, info.index && info.index.kind,
                 model.attention.length && "attention: " +
                   model.attention.map((method) => method.replace(/pp$/, "++")).join(", ")];
  $("model-facts").replaceChildren(...facts.filter(Boolean).map((text) => {
    const chip = document.createElement("span");
    chip.textContent = text;
    return chip;
  }));
}

// --- customers -------------------------------------------------------------------------------

function listUsers() {
  const query = $("user-search").value.trim().toLowerCase();
  const users = state.catalogue.user_ids;
  const matching = query ? users.filter((id) => id.toLowerCase().includes(query)) : users;
  const mapped = new Set(attentionUsers());
  $("user-list").replaceChildren(...matching.slice(0, LISTED_USERS).map((id) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.user = id;
    button.textContent = id;
    if (mapped.has(id)) {
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.textContent = "◉ maps";
      dot.title = "attention maps were written for this customer";
      button.append(dot);
    }
    button.classList.toggle("selected", id === state.user);
    button.addEventListener("click", guarded(() => selectUser(id)));
    item.append(button);
    return item;
  }));
  const more = matching.length - LISTED_USERS;
  $("user-count").textContent = `${matching.length.toLocaleString()} customers` +
    (more > 0 ? ` (first ${LISTED_USERS} listed: search to narrow)` : "");
  $("cold-start").classList.toggle("selected", state.user === UNKNOWN_USER);
}

function attentionUsers() {
  const users = [];
  for (const maps of state.attention.values()) users.push(...maps.user_ids);
  return users;
}

async function selectUser(id) {
  state.user = id;
  listUsers();
  writeHash();
  await showCustomer();
}

async function showCustomer() {
  if (!state.user) return;
  notice("");
  $("welcome").hidden = true;
  $("customer").hidden = false;
  const unknown = state.user === UNKNOWN_USER;
  $("customer-name").textContent = unknown ? "Unknown customer" : state.user;
  $("avatar").textContent = unknown ? "?" : state.user.replace(/^u/, "").slice(-3);
  $("avatar").style.setProperty("--hue", unknown ? 30 : hue(state.user));
  const signatures = state.model.signatures;
  $("history").hidden = isPairs() || !signatures.includes("user_query");
  $("recommendations").hidden = isPairs();
  $("pairs").hidden = !isPairs();
  try {
    const cold = isPairs() ? await showPairs() : await showRecommendations();
    const badges = [];
    if (cold) badges.push(["badge cold", "cold start: scored as the average customer"]);
    if (isPairs() && state.model.description.personalised === false) {
      badges.push(["badge", "not personalised: every customer gets the same partners"]);
    }
    $("customer-badges").replaceChildren(...badges.map(([className, text]) => {
      const badge = document.createElement("span");
      badge.className = className;
      badge.textContent = text;
      return badge;
    }));
    await showAttention();
  } catch (error) {
    notice(error.message);
  }
}

async function showRecommendations() {
  const k = Math.min(Number($("k").value), state.catalogue.item_ids.length);
  const instance = { user_id: state.user, k, category: $("category").value };
  const [recommended, query] = await Promise.all([
    predict("recommend", instance),
    $("history").hidden ? null : predict("user_query", { user_id: state.user }),
  ]);
  if (query) {
    const seen = query.seen_item_ids.filter(Boolean);
    $("history-count").textContent = `${seen.length} bought`;
    fill($("history-items"), seen.map((id) => card(id)),
         query.cold_start ? "An unknown customer has no history." : "Nothing bought yet.");
  }
  fill($("recommendation-items"), served(recommended.item_ids, recommended.scores),
       "Nothing left to recommend in this category.");
  return recommended.cold_start;
}

// --- complete the look (head "compatibility") ------------------------------------------------

function anchorItems() {
  const complements = state.catalogue.complements || {};
  const withPartners = new Set(Object.keys(complements)
    .filter((category) => (complements[category] || []).length));
  return state.catalogue.item_ids.filter((id) => withPartners.has(categoryOf(id)));
}

function listAnchors() {
  const query = $("item-search").value.trim().toLowerCase();
  const items = anchorItems().filter((id) => !query || id.toLowerCase().includes(query) ||
                                              categoryOf(id).toLowerCase().includes(query));
  if (!state.item && items.length) state.item = items[0];
  fill($("anchor-items"), items.slice(0, LISTED_ANCHORS).map((id) => {
    const figure = card(id, { onClick: pickAnchor });
    figure.classList.toggle("picked", id === state.item);
    return figure;
  }), "No item matches (items whose category has complements).");
}

async function pickAnchor(id) {
  state.item = id;
  listAnchors();
  writeHash();
  await showCustomer();
}

async function showPairs() {
  if (!state.item) {
    fill($("pair-items"), [], "This model knows no item with a complementary category.");
    return false;
  }
  $("anchor-name").textContent = `${state.item} (${categoryOf(state.item)})`;
  const k = Math.min(Number($("k").value), state.catalogue.item_ids.length);
  const pairs = await predict("complete_pair", { user_id: state.user, item_id: state.item, k });
  fill($("pair-items"), served(pairs.item_ids, pairs.scores), "No partner found.");
  return pairs.cold_start;
}

// --- attention maps --------------------------------------------------------------------------

async function attentionMaps(method) {
  if (!state.attention.has(method)) {
    state.attention.set(method, await getJSON(apiURL(state.model, `attention/${method}`)));
  }
  return state.attention.get(method);
}

const TURBO = [[48, 18, 59], [70, 134, 251], [27, 229, 181], [164, 252, 60], [251, 185, 56],
               [122, 4, 3]];

function colour(value) { // value in [0, 1] -> an RGB triple of the turbo-like ramp
  const position = value * (TURBO.length - 1);
  const low = Math.min(Math.floor(position), TURBO.length - 2), share = position - low;
  return TURBO[low].map((start, channel) => start + (TURBO[low + 1][channel] - start) * share);
}

function bytesOf(base64) {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let index = 0; index < text.length; index += 1) bytes[index] = text.charCodeAt(index);
  return bytes;
}

function overlay(maps, column, row) {
  const canvas = document.createElement("canvas");
  canvas.width = maps.width;
  canvas.height = maps.height;
  canvas.className = "heatmap";
  const image = bytesOf(maps.images[column]);
  const heat = bytesOf(maps.maps[row][column]);
  const opacity = Number($("opacity").value) / 100;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(maps.width, maps.height);
  for (let pixel = 0; pixel < heat.length; pixel += 1) {
    const value = heat[pixel] / 255, alpha = opacity * value;
    const tint = colour(value);
    for (let channel = 0; channel < 3; channel += 1) {
      pixels.data[4 * pixel + channel] =
        image[3 * pixel + channel] * (1 - alpha) + tint[channel] * alpha;
    }
    pixels.data[4 * pixel + 3] = 255;
  }
  context.putImageData(pixels, 0, 0);
  return canvas;
}

async function showAttention() {
  const methods = state.model.attention;
  $("attention").hidden = !methods.length;
  if (!methods.length) return;
  $("methods").replaceChildren(...methods.map((method) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = method.replace(/pp$/, "++");
    button.dataset.method = method;
    button.classList.toggle("selected", method === state.method);
    button.addEventListener("click", guarded(async () => {
      state.method = method;
      writeHash();
      await showAttention();
    }));
    return button;
  }));
  const maps = await attentionMaps(state.method);
  listUsers(); // marks the customers the maps were written for
  $("attention-grid").href = apiURL(state.model, `attention/${state.method}.png`);
  const row = maps.user_ids.indexOf(state.user);
  const items = $("attention-items");
  if (row < 0) {
    $("attention-note").replaceChildren(
      "Maps were written for other customers (tfrec-fashion visualize RUN_DIR --user …): ",
      ...maps.user_ids.map((id) => {
        const button = document.createElement("button");
        button.className = "chip-button";
        button.type = "button";
        button.textContent = id;
        button.addEventListener("click", guarded(() => selectUser(id)));
        return button;
      }));
    items.replaceChildren();
    return;
  }
  $("attention-note").textContent = "Where the model looks when it scores each item for " +
    `${state.user}: bright = the pixels that raise the score most.` +
    (maps.sanity ? ` Sanity checks: ${maps.sanity}` : "");
  items.replaceChildren(...maps.item_ids.map((itemId, column) => {
    const figure = card(itemId, { score: maps.scores[row][column] });
    figure.firstChild.replaceWith(overlay(maps, column, row));
    return figure;
  }));
}

// --- start -----------------------------------------------------------------------------------

async function applyHash() {
  const wanted = readHash();
  if (wanted.method) state.method = wanted.method;
  if (!state.model || (wanted.model && wanted.model !== state.model.name)) {
    await selectModel(wanted.model);
  }
  if (!state.model) return;
  if (wanted.item && state.itemRow.has(wanted.item)) state.item = wanted.item;
  if (isPairs()) listAnchors();
  if (wanted.user) await selectUser(wanted.user);
}

// An event handler whose failure is shown on the page (never an unhandled rejection).
function guarded(handler) {
  return (event) => Promise.resolve(handler(event)).catch((error) => notice(error.message));
}

async function start() {
  $("model").addEventListener("change", guarded(async (event) => {
    await selectModel(event.target.value);
    writeHash();
    await showCustomer();
  }));
  $("user-search").addEventListener("input", listUsers);
  $("item-search").addEventListener("input", listAnchors);
  $("cold-start").addEventListener("click", guarded(() => selectUser(UNKNOWN_USER)));
  $("k").addEventListener("change", guarded(showCustomer));
  $("category").addEventListener("change", guarded(showCustomer));
  $("opacity").addEventListener("input", guarded(showAttention));
  window.addEventListener("hashchange", guarded(applyHash));
  await loadModels();
  await applyHash();
  document.body.dataset.ready = "true";
}

start().catch((error) => notice(error.message));
