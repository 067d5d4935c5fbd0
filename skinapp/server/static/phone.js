"use strict";
// The phone page. The pairing link carries the token in its fragment (#token=...), which
// browsers never send to the server; we keep it in localStorage and send it as a Bearer
// token to the ordinary /jobs API. #job=<id> shows (and follows) one job.
(() => {
  const KEY = "skinapp.token";
  const TERMINAL = ["SUCCESS", "FAILURE", "REVOKED"];
  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  let following = 0; // bumped for each new job: an older poll loop sees it and stops

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  const token = () => localStorage.getItem(KEY);
  const show = (id, visible) => $(id).classList.toggle("hidden", !visible);
  const reveal = (id) => { show(id, true); $(id).scrollIntoView({ block: "nearest" }); };

  function readFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.get("token")) localStorage.setItem(KEY, params.get("token"));
    const job = params.get("job");
    setJobInUrl(job); // the token leaves the address bar, history and bookmarks
    return job;
  }

  function setJobInUrl(job) {
    history.replaceState(null, "", location.pathname + (job ? "#job=" + encodeURIComponent(job) : ""));
  }

  function showPairing() {
    $("pairing").textContent = token()
      ? "Paired with the workstation at " + location.host
      : "Not paired: on the workstation run “skinapp token pair” and open its link here.";
    updateSend();
  }

  function updateSend() {
    $("send").disabled = !token() || !$("photo").files.length;
  }

  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, { method, body, headers: { Authorization: "Bearer " + token() } });
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
        showPairing();
        return "This phone is not paired, or its pairing was revoked: pair again " +
          "(on the workstation: skinapp token pair).";
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
    show("demo", Boolean(result.demo));
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

  async function follow(jobId) {
    const mine = ++following;
    setJobInUrl(jobId);
    show("result", false);
    reveal("progress-card");
    while (mine === following) {
      try {
        const job = await api("GET", "/jobs/status/" + encodeURIComponent(jobId));
        showError("");
        showProgress(job);
        if (TERMINAL.includes(job.status)) return finish(job);
      } catch (err) {
        showError(explain(err));
        if (err.status) return show("progress-card", false); // a network blip is retried
      }
      await sleep(1000);
    }
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
  $("again").addEventListener("click", reset);
  function start() { // on load, and when another pairing or job link opens this page
    const job = readFragment();
    showPairing();
    if (job && token()) follow(job);
  }
  window.addEventListener("hashchange", start);
  start();
})();
