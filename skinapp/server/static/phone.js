"use strict";
// The phone page. Pairing: the link's fragment (#code=K7QD-M3XP&fp=<sha256>), which browsers
// never send to the server, carries a single-use code valid a few minutes; the page shows the
// certificate fingerprint to compare with the workstation's, then POSTs the code to
// /phone/pair, which answers with an HttpOnly, Secure, SameSite=Strict cookie: this script
// never holds the device token. A token made by hand (#token=..., skinapp token create)
// still works: it is kept in localStorage and sent as a Bearer token. #job=<id> follows a
// job. Progress comes from the /jobs/events stream, with a slow poll behind it, so a
// dropped connection only delays the page.
(() => {
  const KEY = "skinapp.token";
  const JOBS = "skinapp.jobs"; // this device's last few job ids, newest first
  let paired = null; // the /phone/me record once the workstation knows this device
  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  let following = 0; // bumped for each new job: an older poll loop sees it and stops

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  const token = () => localStorage.getItem(KEY);

  // The job states come from the API (skinapp.contract), not a copy kept in this page.
  let contract = null;
  async function terminalStates() {
    if (!contract) {
      const response = await fetch("/phone/contract.json");
      if (!response.ok) throw new Error("the workstation did not send its job states");
      contract = await response.json();
    }
    return contract.terminal;
  }
  const show = (id, visible) => $(id).classList.toggle("hidden", !visible);
  const reveal = (id) => { show(id, true); $(id).scrollIntoView({ block: "nearest" }); };

  function readFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.get("token")) localStorage.setItem(KEY, params.get("token"));
    if (params.get("code")) $("code").value = params.get("code");
    if (params.get("fp")) showFingerprint(params.get("fp"));
    const job = params.get("job");
    setJobInUrl(job); // code and token leave the address bar, history and bookmarks
    return job;
  }

  function showFingerprint(hex) {
    const pairs = hex.toUpperCase().replace(/[^0-9A-F]/g, "").match(/.{2}/g) || [];
    $("fingerprint").textContent = pairs.join(":");
    show("fingerprint-box", pairs.length > 0);
  }

  function setJobInUrl(job) {
    history.replaceState(null, "", location.pathname + (job ? "#job=" + encodeURIComponent(job) : ""));
  }

  function showPairing() {
    $("pairing").textContent = paired
      ? "Paired as “" + paired.name + "” with the workstation at " + location.host
      : "Not paired: open the Phones panel on the workstation (or run “skinapp token pair”).";
    show("pair-form", !paired);
    show("form", Boolean(paired));
    updateSend();
  }

  function updateSend() {
    $("send").disabled = !paired || !$("photo").files.length;
  }

  async function api(method, path, body, json) {
    let response;
    const headers = token() ? { Authorization: "Bearer " + token() } : {};
    if (json) headers["Content-Type"] = "application/json";
    try {
      // same-origin: the browser adds the device cookie (and an Origin header on writes).
      response = await fetch(path, { method, body, headers, credentials: "same-origin" });
    } catch (err) {
      throw new ApiError(0, "Cannot reach the workstation at " + location.host +
        ". Is this phone on the clinic Wi-Fi, and does skinapp run with --lan?");
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, (data && data.detail) || response.statusText);
    return data;
  }

  function explain(err) {
    switch (err.status) {
      case 401:
        localStorage.removeItem(KEY);
        paired = null;
        showPairing();
        return "This phone is not paired, or its pairing was revoked: pair again " +
          "with a new code from the workstation's Phones panel.";
      case 429: return err.message;
      case 403: return "This job belongs to another device.";
      case 404: return "No such job (unknown, or older than the result TTL).";
      case 413: case 415: case 422: return "The photo was refused: " + err.message;
      case 503: return "The workstation's job queue is unavailable: " + err.message;
      default: return (err.status ? "Error " + err.status + ": " : "") + err.message;
    }
  }

  function showError(message) {
    $("error").textContent = message || "";
    show("error", Boolean(message));
  }

  function showProgress(job) {
    const p = job.progress || {};
    $("state").textContent = job.status;
    $("percent").textContent = (p.percent || 0) + " %";
    $("bar").value = p.percent || 0;
    $("stage").textContent = p.status || "";
  }

  function labelOf(result) {
    if (result.predicted_label) return result.predicted_label;
    if (result.tds_band) return "TDS " + Number(result.tds).toFixed(2) + " · " + result.tds_band;
    return "—";
  }

  function showResult(job) {
    const result = job.result || {};
    const risk = result.risk_level;
    const assessment = result.assessment || {};
    show("demo", Boolean(result.demo));
    show("not-assessed", assessment.in_domain === false);
    $("not-assessed").textContent = assessment.in_domain === false
      ? "NOT ASSESSED · " + (assessment.reason || "the photo is not like the ones the model knows")
      : "";
    $("label").textContent = labelOf(result);
    $("confidence").textContent = typeof result.confidence === "number"
      ? "Confidence " + Math.round(result.confidence * 100) + " %" : "";
    const declined = Boolean(result.assessment && result.assessment.in_domain === false);
    $("risk").textContent = declined
      ? "Not assessed — this image is unlike the images the model was trained on"
      : risk ? risk + " risk" : "no risk level";
    $("risk").className = "risk" + (risk ? " risk-" + risk : "");
    $("recommendation").textContent = result.recommendation || "";
    $("warnings").replaceChildren(...(result.warnings || []).map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    const model = result.model || {};
    $("meta").textContent = [job.analysis, result.context && result.context.body_location,
      model.name && model.name + " " + (model.version || ""), "job " + job.job_id]
      .filter(Boolean).join(" · ");
    reveal("result");
  }

  function finish(job) {
    show("progress-card", false);
    if (job.status === "SUCCESS") showResult(job);
    else if (job.status === "FAILURE") showError("The analysis failed: " + (job.error || "unknown error"));
    else showError("The job was cancelled.");
  }

  // One event stream for the page; it reconnects by itself (EventSource) after a drop.
  let events = null;
  let latest = null; // the newest event of the followed job
  function listen() {
    if (events || token()) return; // a Bearer token cannot ride on EventSource: poll only
    events = new EventSource("/jobs/events");
    events.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (latest && event.job_id === latest.job_id) { latest = event; showProgress(event); }
      showJobs();
    };
    events.onerror = () => { // closed for good (revoked or the server went away): redo later
      if (events.readyState === EventSource.CLOSED) { events = null; setTimeout(listen, 3000); }
    };
  }

  async function follow(jobId) {
    const mine = ++following;
    setJobInUrl(jobId);
    remember(jobId);
    show("result", false);
    reveal("progress-card");
    latest = { job_id: jobId };
    listen();
    let wait = 1000;
    while (mine === following) {
      try {
        const job = await api("GET", "/jobs/status/" + encodeURIComponent(jobId));
        showError("");
        showProgress(job);
        wait = 1000;
        if ((await terminalStates()).includes(job.status)) { showJobs(); return finish(job); }
      } catch (err) {
        showError(explain(err));
        if (err.status) return show("progress-card", false);
        wait = Math.min(wait * 2, 15000); // a dropped connection: try again, less and less often
      }
      await waitForChange(wait);
    }
  }

  // Wake up when the stream says the job changed, or after `ms` at the latest.
  async function waitForChange(ms) {
    const seen = latest && latest.status;
    const percent = latest && latest.progress && latest.progress.percent;
    for (let waited = 0; waited < ms; waited += 100) {
      await sleep(100);
      if (!latest) return;
      const now = latest.progress && latest.progress.percent;
      if (latest.status !== seen || now !== percent) return;
    }
  }

  function remember(jobId) {
    const ids = JSON.parse(localStorage.getItem(JOBS) || "[]").filter((id) => id !== jobId);
    localStorage.setItem(JOBS, JSON.stringify([jobId, ...ids].slice(0, 5)));
  }

  async function showJobs() {
    if (!paired) return show("jobs-card", false);
    try {
      const body = await api("GET", "/jobs/list?limit=5");
      $("jobs").replaceChildren(...body.jobs.map((job) => {
        const li = document.createElement("li");
        const link = document.createElement("a");
        link.href = "#job=" + encodeURIComponent(job.job_id);
        link.textContent = job.analysis + " · " + job.status;
        const when = document.createElement("span");
        when.className = "small";
        when.textContent = " " + (job.submitted_at || "").replace("T", " ").slice(0, 16);
        li.append(link, when);
        return li;
      }));
      show("jobs-card", body.jobs.length > 0);
    } catch (err) { /* the list is a convenience; errors show where the person acts */ }
  }

  async function pair(event) {
    event.preventDefault();
    showError("");
    $("pair").disabled = true;
    try {
      const body = JSON.stringify({ code: $("code").value, device_name: $("device-name").value });
      paired = await api("POST", "/phone/pair", body, true);
      $("code").value = "";
      showPairing();
      showJobs();
      listen();
    } catch (err) {
      showError(err.status === 401 ? "That code is unknown, used or expired: ask for a new one." : explain(err));
    } finally {
      $("pair").disabled = false;
    }
  }

  async function whoAmI() {
    try { paired = await api("GET", "/phone/me"); } catch (err) {
      paired = null;
      if (!err.status) { showError(explain(err)); setTimeout(whoAmI, 5000); } // reconnect
    }
    showPairing();
    showJobs();
    if (paired) listen();
  }

  async function submit(event) {
    event.preventDefault();
    const form = new FormData();
    form.append("file", $("photo").files[0]);
    if ($("location").value) form.append("body_location", $("location").value);
    $("send").disabled = true;
    showError("");
    $("state").textContent = "Sending…";
    reveal("progress-card");
    try {
      const job = await api("POST", "/jobs/submit/" + $("analysis").value, form);
      follow(job.job_id);
    } catch (err) {
      show("progress-card", false);
      showError(explain(err));
    } finally {
      updateSend();
    }
  }

  function preview() {
    const file = $("photo").files[0];
    const img = $("preview");
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    if (file) img.src = URL.createObjectURL(file);
    else img.removeAttribute("src");
    show("preview", Boolean(file));
    updateSend();
  }

  function reset() {
    following++;
    $("form").reset();
    preview();
    show("result", false);
    showError("");
    setJobInUrl(null);
  }

  $("photo").addEventListener("change", preview);
  $("form").addEventListener("submit", submit);
  $("pair-form").addEventListener("submit", pair);
  $("again").addEventListener("click", reset);
  window.addEventListener("online", () => { showError(""); whoAmI(); });
  window.addEventListener("offline", () => showError("No connection: the page carries on when it is back."));
  async function start() { // on load, and when another pairing or job link opens this page
    const job = readFragment();
    await whoAmI();
    if (job && paired) follow(job);
  }
  window.addEventListener("hashchange", start);
  start();
})();
