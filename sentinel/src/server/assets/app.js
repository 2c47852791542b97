// Sentinel dashboard: the live feed over Server-Sent Events, and confirmation prompts.
// Builds rows with textContent only: agent data never becomes markup.
"use strict";

function levelBadge(level) {
  const s = document.createElement("span");
  s.className = "badge lvl-" + (["low", "medium", "high", "critical"].includes(level) ? level : "none");
  s.textContent = level;
  return s;
}

function pad(n) { return String(n).padStart(2, "0"); }

function fmtTime(ns) {
  const d = new Date(Math.floor(ns / 1e6));
  return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
    pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
}

function cell(tr, content, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (content instanceof Node) td.appendChild(content); else td.textContent = content;
  tr.appendChild(td);
  return td;
}

function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

function rowFor(a) {
  const tr = document.createElement("tr");
  tr.dataset.id = a.id;
  tr.className = "fresh";
  cell(tr, fmtTime(a.time_ns), "time");
  cell(tr, levelBadge(a.level));
  cell(tr, link("/hosts/" + encodeURIComponent(a.host), a.host));
  cell(tr, a.principal && a.principal.user ? a.principal.user : "uid " + (a.principal ? a.principal.uid : "?"));
  cell(tr, String(a.score), "num");
  let top = null;
  for (const f of a.factors || []) if (!top || f.weight > top.weight) top = f;
  cell(tr, link("/anomalies/" + encodeURIComponent(a.id), top ? top.reason : ""), "reason");
  cell(tr, "");
  return tr;
}

function startFeed() {
  const table = document.getElementById("feed");
  const status = document.getElementById("live-status");
  if (!table || !window.EventSource) return;
  const tbody = table.querySelector("tbody");
  const es = new EventSource("/api/live" + window.location.search);
  es.addEventListener("hello", () => { status.textContent = "live"; status.classList.add("on"); });
  es.addEventListener("anomaly", (ev) => {
    let a;
    try { a = JSON.parse(ev.data); } catch (e) { return; }
    if (tbody.querySelector('tr[data-id="' + CSS.escape(a.id) + '"]')) return;
    tbody.insertBefore(rowFor(a), tbody.firstChild);
    const empty = document.getElementById("feed-empty");
    if (empty) empty.remove();
    while (tbody.rows.length > 500) tbody.deleteRow(-1);
  });
  es.addEventListener("lagged", () => { status.textContent = "missed events: reload"; });
  es.onerror = () => { status.textContent = "reconnecting…"; status.classList.remove("on"); };
}

document.addEventListener("DOMContentLoaded", () => {
  startFeed();
  for (const b of document.querySelectorAll("[data-confirm]")) {
    b.addEventListener("click", (e) => { if (!window.confirm(b.dataset.confirm)) e.preventDefault(); });
  }
});
