// The Funding page's top-up form: says how many points the typed amount buys, as the server
// counts them (programs/funding.py points_for_money: whole points, rounded down).
const field = document.getElementById("top-up-amount");
const said = document.getElementById("top-up-buys");
const perPoint = Number(field.dataset.minorPerPoint);
const fallback = said.textContent;

// Said on load too: a person (or a browser restoring the form) may have typed before this
// module ran, and an input event fired then had no listener to hear it.
function sayWhatItBuys() {
  const text = field.value.trim().replaceAll(",", "");
  const found = /^(\d{1,13})(?:\.(\d{1,2}))?$/.exec(text);
  if (!found) {
    said.textContent = text ? "Type the amount as a number such as 100 or 100.00." : fallback;
    return;
  }
  const minor = Number(found[1]) * 100 + Number((found[2] || "0").padEnd(2, "0"));
  const points = Math.floor(minor / perPoint);
  said.textContent = `Buys ${points.toLocaleString("en-US")} ${field.dataset.pointName}.`;
}

field.addEventListener("input", sayWhatItBuys);
sayWhatItBuys();
