// Sentiment Analysis Web App (workflow 2a).
//
// POSTs the raw review text (Content-Type text/plain, a CORS "simple request", so no preflight)
// to the public API (API Gateway -> Lambda -> SageMaker endpoint). The API answers "1"
// (positive) or "0" (negative) and the raw score in the X-Sentiment-Score header.
//
// The API URL comes from config.json next to this page ({"apiUrl": "http://..."}), or from an
// ?api=<url> query parameter, which wins. Everything is written with textContent, never
// innerHTML, and any failure is shown as an error, never as a verdict.
"use strict";

(function () {
  const REQUEST_TIMEOUT_MS = 30000;
  const SCORE_HEADER = "X-Sentiment-Score";

  const form = document.getElementById("review-form");
  const review = document.getElementById("review");
  const submit = document.getElementById("submit");
  const result = document.getElementById("result");
  const score = document.getElementById("score");
  const apiInfo = document.getElementById("api-info");

  function show(state, text, className) {
    result.textContent = text;
    result.className = "result" + (className ? " " + className : "");
    result.dataset.state = state;
  }

  function showScore(raw) {
    score.removeAttribute("title");
    if (raw === null || raw === undefined || String(raw).trim() === "") {
      score.textContent = "";
      score.dataset.state = "idle";
      return;
    }
    const text = String(raw).trim();
    const value = Number(text);
    score.textContent = "score " + (Number.isFinite(value) ? value.toFixed(2) : text);
    score.title = text;
    score.dataset.state = "shown";
  }

  function showError(message) {
    show("error", "Error: " + message, "error");
    showScore(null);
  }

  function excerpt(text, limit) {
    const clean = String(text || "").replace(/\s+/g, " ").trim();
    return clean.length > limit ? clean.slice(0, limit) + "\u2026" : clean;
  }

  // ----------------------------------------------------------------------- API URL

  async function loadApiUrl() {
    const fromQuery = new URLSearchParams(window.location.search).get("api");
    if (fromQuery && fromQuery.trim()) {
      return { url: fromQuery.trim(), from: "?api= parameter" };
    }
    try {
      const response = await fetch("config.json", { cache: "no-store" });
      if (!response.ok) {
        return { url: null, problem: "config.json answered " + response.status };
      }
      const config = await response.json();
      if (config && typeof config.apiUrl === "string" && config.apiUrl.trim()) {
        return { url: config.apiUrl.trim(), from: "config.json" };
      }
      return { url: null, problem: "config.json has no apiUrl" };
    } catch (error) {
      return { url: null, problem: "could not read config.json (" + error.message + ")" };
    }
  }

  const apiReady = loadApiUrl().then(function (api) {
    if (api.url) {
      apiInfo.textContent = "API: " + api.url + " (from " + api.from + ")";
      apiInfo.dataset.apiUrl = api.url;
    } else {
      apiInfo.textContent = "No API URL configured: " + api.problem + ". Add ?api=<url> to the page address.";
    }
    return api;
  });

  // ----------------------------------------------------------------------- submitting

  async function classify(apiUrl, text) {
    const controller = new AbortController();
    const timer = setTimeout(function () {
      controller.abort();
    }, REQUEST_TIMEOUT_MS);
    let response;
    let body;
    try {
      response = await fetch(apiUrl, {
        method: "POST",
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        body: text,
        signal: controller.signal,
      });
      body = await response.text();
    } catch (error) {
      if (error && error.name === "AbortError") {
        showError("the API did not answer within " + REQUEST_TIMEOUT_MS / 1000 + " s (" + apiUrl + ").");
      } else {
        showError("could not reach the API at " + apiUrl + " (" + (error && error.message) + ").");
      }
      return;
    } finally {
      clearTimeout(timer);
    }

    if (!response.ok) {
      const detail = excerpt(body, 300);
      showError(
        "the API answered " + response.status + (response.statusText ? " " + response.statusText : "") +
          (detail ? ": " + detail : "."),
      );
      return;
    }
    const verdict = body.trim();
    if (verdict === "1") {
      show("positive", "Your review was POSITIVE!", "success");
    } else if (verdict === "0") {
      show("negative", "Your review was NEGATIVE!", "danger");
    } else {
      showError('the API answered "' + excerpt(body, 100) + '", which is neither 1 nor 0.');
      return;
    }
    showScore(response.headers.get(SCORE_HEADER));
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (submit.disabled) {
      return;
    }
    const text = review.value;
    if (!text.trim()) {
      showError("please write a review first.");
      review.focus();
      return;
    }
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    show("pending", "Asking the model\u2026", "pending");
    showScore(null);
    try {
      const api = await apiReady;
      if (!api.url) {
        showError("no API URL configured (" + api.problem + "); add ?api=<url> to the page address.");
        return;
      }
      await classify(api.url, text);
    } catch (error) {
      showError("unexpected failure (" + (error && error.message) + ").");
    } finally {
      submit.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
})();
