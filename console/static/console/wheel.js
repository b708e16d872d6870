// The wheel designer's figures and picture, live as the manager types
// (console/templates/console/campaign_design.html). The arithmetic is games/wheel.py
// `economics`; the text and the SVG are written exactly as console/manager/wheel_picture.py
// writes them on the server, so a page reads the same before and after this script runs.
// The server checks and saves the design: nothing here decides what is allowed.

const PALETTE = ["#1f5fbf", "#f2a900", "#1e7b34", "#b3261e", "#6a3fb5", "#0f7c86", "#c2571a", "#4a4f5a"];
const CENTRE = 100;
const RADIUS = 96;
const SVG = "http://www.w3.org/2000/svg";

// Python's `fixed` is this: half up on the exact binary value; -0 reads "0".
const fixed = (value, places) => (value === 0 ? 0 : value).toFixed(places);

function grouped(text) {
  const [whole, part] = text.split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = whole.replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return sign + digits + (part ? "." + part : "");
}

const percent = (share) => fixed(share * 100, 2) + "%";
const points = (value) => grouped(fixed(value, 2));
const colourOf = (index, chosen) => chosen || PALETTE[index % PALETTE.length];
const point = (angle) => `${fixed(CENTRE + RADIUS * Math.cos(angle), 2)} ${fixed(CENTRE + RADIUS * Math.sin(angle), 2)}`;

export function slices(weights, colours) {
  const total = weights.reduce((a, b) => a + b, 0);
  if (total <= 0) return [];
  const drawn = [];
  const r = fixed(RADIUS, 2);
  const c = fixed(CENTRE, 2);
  let before = 0;
  weights.forEach((weight, index) => {
    const colour = colourOf(index, colours[index] || null);
    if (weight <= 0) return;
    if (weight === total) {
      const top = fixed(CENTRE - RADIUS, 2);
      const bottom = fixed(CENTRE + RADIUS, 2);
      drawn.push({ path: `M ${c} ${top} A ${r} ${r} 0 1 1 ${c} ${bottom} A ${r} ${r} 0 1 1 ${c} ${top} Z`, colour });
      before += weight;
      return;
    }
    const start = 2 * Math.PI * before / total - Math.PI / 2;
    before += weight;
    const end = 2 * Math.PI * before / total - Math.PI / 2;
    const large = weight * 2 > total ? 1 : 0;
    drawn.push({ path: `M ${c} ${c} L ${point(start)} A ${r} ${r} 0 ${large} 1 ${point(end)} Z`, colour });
  });
  return drawn;
}

// A whole number typed in a field, or null.
function whole(input) {
  const text = input ? input.value.trim() : "";
  return /^\d+$/.test(text) ? Number(text) : null;
}

function chosenPoints(select) {
  const option = select && select.selectedOptions[0];
  return option && option.dataset.points ? Number(option.dataset.points) : 0;
}

// One segment's label, weight, colour and prize worth in points (null when not yet a number).
function readRow(fieldset, cost) {
  const field = (role) => fieldset.querySelector(`[data-role="${role}"]`);
  const prize = field("prize").value;
  let worth = 0;
  if (prize === "points") worth = whole(field("points"));
  else if (prize === "item") worth = chosenPoints(field("item"));
  else if (prize === "free_spin") worth = whole(field("spins")) === null || cost === null ? null : whole(field("spins")) * cost;
  else if (prize === "entries") worth = whole(field("entries")) === null ? null : whole(field("entries")) * chosenPoints(field("sweepstakes"));
  return {
    label: fieldset.querySelector('input[name$="-label"]').value,
    weight: whole(field("weight")),
    colour: field("colour").value,
    prize,
    worth,
  };
}

function showPrizeFields(fieldset) {
  const prize = fieldset.querySelector('[data-role="prize"]').value;
  for (const part of fieldset.querySelectorAll("[data-prize]")) part.hidden = part.dataset.prize !== prize;
}

function swatch(colour) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "swatch");
  svg.setAttribute("width", "12");
  svg.setAttribute("height", "12");
  svg.setAttribute("aria-hidden", "true");
  const rect = document.createElementNS(SVG, "rect");
  rect.setAttribute("width", "12");
  rect.setAttribute("height", "12");
  rect.setAttribute("fill", colour);
  svg.append(rect);
  return svg;
}

function cell(text, numeric) {
  const td = document.createElement("td");
  if (numeric) td.className = "num";
  td.textContent = text;
  return td;
}

function update(form) {
  const pointName = form.dataset.pointName;
  const cost = whole(form.querySelector("#cost_points"));
  const rows = [...form.querySelectorAll("fieldset.segment")].map((f) => readRow(f, cost));
  const weights = rows.map((row) => row.weight || 0);
  const total = weights.reduce((a, b) => a + b, 0);
  const known = total > 0 && cost !== null && rows.every((row) => row.weight !== null && row.worth !== null);
  const payout = known ? rows.reduce((sum, row) => sum + row.weight * row.worth, 0) : 0;

  document.querySelector("#expected-cost").textContent = known ? `${points(payout / total)} ${pointName}` : "—";
  document.querySelector("#rtp").textContent = !known ? "—" : cost === 0 ? "free wheel" : percent(payout / (total * cost));

  const body = document.querySelector("#odds tbody");
  body.replaceChildren(...rows.map((row, index) => {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.append(swatch(colourOf(index, row.colour || null)), " " + row.label);
    tr.append(name, cell(known ? row.worth.toLocaleString("en-US") : "—", true),
              cell(known ? percent(row.weight / total) : "—", true));
    return tr;
  }));

  const group = document.querySelector("#wheel-slices");
  group.replaceChildren(...slices(weights, rows.map((row) => row.colour)).map((slice) => {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", slice.path);
    path.setAttribute("fill", slice.colour);
    path.setAttribute("stroke", "#ffffff");
    path.setAttribute("stroke-width", "1.5");
    return path;
  }));
}

function renumber(form) {
  form.querySelectorAll("fieldset.segment").forEach((fieldset, index) => {
    for (const number of fieldset.querySelectorAll(".seg-number")) number.textContent = String(index + 1);
  });
}

function addSegment(form) {
  const list = form.querySelector("#segments-list");
  const taken = [...list.querySelectorAll("fieldset.segment")].map((f) => Number(f.dataset.row));
  const next = String(taken.length ? Math.max(...taken) + 1 : 0);
  const fieldset = document.querySelector("#segment-template").content.firstElementChild.cloneNode(true);
  fieldset.dataset.row = next;
  for (const element of fieldset.querySelectorAll("[id], [name], [for], [aria-describedby], button[value]")) {
    for (const attribute of ["id", "name", "for", "aria-describedby", "value"]) {
      const value = element.getAttribute(attribute);
      if (value && value.includes("__i__")) element.setAttribute(attribute, value.replaceAll("__i__", next));
    }
  }
  list.append(fieldset);
  fieldset.querySelector('[data-role="colour"]').value = colourOf(taken.length, null);
  showPrizeFields(fieldset);
  renumber(form);
  update(form);
  fieldset.querySelector('input[name$="-label"]').focus();
}

function start() {
  const form = document.querySelector("#designer");
  if (!form) return;
  for (const fieldset of form.querySelectorAll("fieldset.segment")) showPrizeFields(fieldset);
  form.addEventListener("input", () => update(form));
  form.addEventListener("change", (event) => {
    const fieldset = event.target.closest("fieldset.segment");
    if (fieldset && event.target.dataset.role === "prize") showPrizeFields(fieldset);
    update(form);
  });
  form.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.id === "add-segment") {
      event.preventDefault();
      addSegment(form);
    } else if (button.classList.contains("remove")) {
      event.preventDefault();
      button.closest("fieldset.segment").remove();
      renumber(form);
      update(form);
      form.querySelector("#add-segment").focus();
    }
  });
  update(form);
}

start();
