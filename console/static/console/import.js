// Follows an import job: asks the server for its figures each second until it is done,
// then reloads the page once to show the rows that were not imported.
const job = document.getElementById("import-job");
const number = (n) => n.toLocaleString("en-US");

async function follow() {
  const answer = await fetch(job.dataset.progress, { headers: { Accept: "application/json" } });
  if (!answer.ok) return;
  const now = await answer.json();
  const bar = document.getElementById("import-progress");
  bar.value = now.done_rows;
  bar.textContent = `${now.done_rows} of ${now.total_rows}`;
  for (const name of ["created", "updated", "unchanged"]) {
    document.getElementById(`import-${name}`).textContent = number(now[name]);
  }
  document.getElementById("import-errors").textContent = number(now.error_count);
  if (now.status === "done") {
    window.location.reload();
    return;
  }
  document.getElementById("import-status").textContent =
    `${number(now.done_rows)} of ${number(now.total_rows)} rows imported so far.`;
  setTimeout(follow, 1000);
}

if (job && job.dataset.status !== "done") {
  const refresh = document.getElementById("import-refresh");
  if (refresh) refresh.hidden = true;
  setTimeout(follow, 1000);
}
