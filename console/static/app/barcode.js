// Code 128 barcodes for gift cards, drawn as inline SVG (no library, nothing from another
// host). Code set B carries printable ASCII; code set C packs two digits per symbol, so a
// long number (most card numbers) makes a shorter, easier-to-scan barcode.
//
// Choosing the code sets (the test in tests/console/test_app_barcode.py follows the same
// rules in Python):
// - start in C when the text begins with 4 or more digits (or is 2 or more digits and
//   nothing else), else in B;
// - in B, switch to C before a run of 6 or more digits (4 or more when the run ends the
//   text); an odd run gives its first digit to B, so C takes whole pairs;
// - in C, pairs while 2 digits come next, then back to B.

// Bar and space widths of symbol values 0..106, bar first (ISO/IEC 15417); 106 is the stop
// with its final bar.
const PATTERNS = [
  "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212", "221213",
  "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221", "223211", "221132",
  "221231", "213212", "223112", "312131", "311222", "321122", "321221", "312212", "322112", "322211",
  "212123", "212321", "232121", "111323", "131123", "131321", "112313", "132113", "132311", "211313",
  "231113", "231311", "112133", "112331", "132131", "113123", "113321", "133121", "313121", "211331",
  "231131", "213113", "213311", "213131", "311123", "311321", "331121", "312113", "312311", "332111",
  "314111", "221411", "431111", "111224", "111422", "121124", "121421", "141122", "141221", "112214",
  "112412", "122114", "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111",
  "111242", "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
  "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311", "113141",
  "114131", "311141", "411131", "211412", "211214", "211232", "2331112",
];
const CODE_C = 99;
const CODE_B = 100;
const START_B = 104;
const START_C = 105;
const STOP = 106;
const QUIET = 10; // modules of white on each side, for the scanner

function digitsAt(text, i) {
  let end = i;
  while (end < text.length && text[end] >= "0" && text[end] <= "9") end += 1;
  return end - i;
}

// The symbol values of `text` (start, data, checksum, stop), or null when a character is
// outside printable ASCII (code set A's control characters are never on a card).
export function symbols(text) {
  if (!text || !/^[\x20-\x7e]+$/.test(text)) return null;
  const lead = digitsAt(text, 0);
  let set = lead >= 4 || (lead >= 2 && lead === text.length) ? "C" : "B";
  const values = [set === "C" ? START_C : START_B];
  let i = 0;
  while (i < text.length) {
    const run = digitsAt(text, i);
    if (set === "C") {
      if (run >= 2) {
        values.push(Number(text.slice(i, i + 2)));
        i += 2;
        continue;
      }
      values.push(CODE_B);
      set = "B";
    }
    if (run >= 6 || (run >= 4 && i + run === text.length)) {
      if (run % 2 === 1) {
        values.push(text.charCodeAt(i) - 32);
        i += 1;
      }
      values.push(CODE_C);
      set = "C";
      continue;
    }
    values.push(text.charCodeAt(i) - 32);
    i += 1;
  }
  const sum = values.reduce((total, value, position) => total + value * Math.max(position, 1), 0);
  values.push(sum % 103, STOP);
  return values;
}

// The modules, one character each: "1" black, "0" white, quiet zones left out.
export function modules(text) {
  const values = symbols(text);
  if (!values) return null;
  return values.map((value) => [...PATTERNS[value]]
    .map((width, k) => (k % 2 === 0 ? "1" : "0").repeat(Number(width))).join("")).join("");
}

const SVG = "http://www.w3.org/2000/svg";

// An <svg> of the barcode with an accessible name, or null when it cannot be encoded. It
// scales to its box (width 100%) with crisp edges; the text stays beside it in the page.
export function svg(text, name) {
  const bits = modules(text);
  if (!bits) return null;
  const width = bits.length + 2 * QUIET;
  const height = 50;
  const root = document.createElementNS(SVG, "svg");
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  root.setAttribute("class", "barcode");
  root.setAttribute("role", "img");
  root.setAttribute("aria-label", name);
  root.setAttribute("shape-rendering", "crispEdges");
  root.setAttribute("preserveAspectRatio", "none");
  const title = document.createElementNS(SVG, "title");
  title.textContent = name;
  const paper = document.createElementNS(SVG, "rect");
  for (const [k, v] of [["width", width], ["height", height], ["fill", "#fff"]]) paper.setAttribute(k, v);
  root.append(title, paper);
  // One rect per bar (a run of black modules).
  for (let i = 0; i < bits.length;) {
    if (bits[i] === "0") { i += 1; continue; }
    let end = i;
    while (bits[end] === "1") end += 1;
    const bar = document.createElementNS(SVG, "rect");
    for (const [k, v] of [["x", QUIET + i], ["width", end - i], ["height", height], ["fill", "#000"]]) {
      bar.setAttribute(k, v);
    }
    root.append(bar);
    i = end;
  }
  return root;
}
