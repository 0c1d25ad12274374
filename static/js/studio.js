// Studio's page behaviour. No inline scripts anywhere: the Content Security Policy forbids them.
(function () {
  "use strict";

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // One idempotency key per intended submission: a double click or a retried request sends the same key
  // and makes one generation; a successful answer arms a fresh key for the next one.
  function armComposer(form) {
    var field = form.querySelector("input[name=idempotency_key]");
    if (field && !field.value) field.value = newKey();
    updateCost(form);
  }

  function updateCost(form) {
    var output = form.querySelector("[data-cost]");
    if (!output) return;
    var prices = JSON.parse(form.dataset.prices || "{}");
    var resolution = form.querySelector("[name=resolution]").value;
    var quality = form.querySelector("[name=quality]").value;
    var count = parseInt(form.querySelector("[name=n]").value, 10) || 1;
    var each = prices[resolution + ":" + quality] || prices[resolution] || parseInt(form.dataset.pricePerImage, 10);
    output.textContent = (each * count).toLocaleString("en-US") + " credits";
  }

  function tickElapsed() {
    var now = Date.now();
    document.querySelectorAll("time.elapsed[data-started-at]").forEach(function (element) {
      var started = Date.parse(element.dataset.startedAt);
      var finished = element.dataset.finishedAt ? Date.parse(element.dataset.finishedAt) : now;
      var seconds = Math.max(0, Math.round((finished - started) / 1000));
      element.textContent = seconds < 60 ? seconds + "s" : Math.floor(seconds / 60) + "m " + (seconds % 60) + "s";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var composer = document.getElementById("composer");
    if (composer) armComposer(composer);
    tickElapsed();
    setInterval(tickElapsed, 1000);
  });

  document.addEventListener("input", function (event) {
    var form = event.target.closest && event.target.closest("#composer");
    if (form) updateCost(form);
  });
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("#composer");
    if (form) updateCost(form);
  });

  // Ctrl/Cmd+Enter submits the composer.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var form = event.target.closest && event.target.closest("#composer");
    if (form) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!form || form.id !== "composer" || !event.detail.successful) return;
    // A card came back (not the composer with errors): the next click is a new submission.
    if (event.detail.xhr.getResponseHeader("HX-Retarget")) return;
    var field = form.querySelector("input[name=idempotency_key]");
    if (field) field.value = newKey();
    var empty = document.getElementById("gallery-empty");
    if (empty) empty.remove();
  });

  // The live message about a new card can arrive before the answer to the request that made it; keep
  // whichever copy is the more recent (higher sequence) and drop the other.
  function dropDuplicateCards() {
    var seen = {};
    document.querySelectorAll("#generations > article[id]").forEach(function (card) {
      var other = seen[card.id];
      if (!other) {
        seen[card.id] = card;
        return;
      }
      var older = parseInt(card.dataset.seq, 10) > parseInt(other.dataset.seq, 10) ? other : card;
      seen[card.id] = older === card ? other : card;
      older.remove();
    });
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "composer") armComposer(target);
    if (target && target.id === "generations") dropDuplicateCards();
  });

  // A live card for a generation this page does not show yet (made in another tab or by a teammate): give it
  // an empty slot on top of the gallery before the websocket extension swaps the card into place.
  document.body.addEventListener("htmx:wsBeforeMessage", function (event) {
    var gallery = document.getElementById("generations");
    if (!gallery || typeof event.detail.message !== "string") return;
    var parsed = document.createElement("template");
    parsed.innerHTML = event.detail.message;
    var sink = document.getElementById("live-sink");
    // Top-level cards only; ":scope >" matches nothing in a template's fragment, so walk its children.
    Array.prototype.forEach.call(parsed.content.children, function (card) {
      if (!card.matches("article[id^='generation-']") || document.getElementById(card.id)) return;
      var slot = document.createElement("article");
      slot.id = card.id;
      slot.dataset.seq = "-1";
      // A page narrowed to one project shows new cards of that project only: one of another lands in the
      // hidden sink (a message holds several cards, and each needs a place to go), emptied after it.
      if (gallery.dataset.project && card.dataset.project !== gallery.dataset.project) {
        if (sink) sink.append(slot);
        return;
      }
      gallery.prepend(slot);
      var empty = document.getElementById("gallery-empty");
      if (empty) empty.remove();
    });
  });

  // After each live message: empty the sink, and take off the page what was deleted elsewhere (the hidden
  // #live-removed holder names the elements: cards here, tiles in the gallery).
  document.body.addEventListener("htmx:wsAfterMessage", function () {
    var sink = document.getElementById("live-sink");
    if (sink) sink.replaceChildren();
    var removed = document.getElementById("live-removed");
    if (!removed || !removed.dataset.remove) return;
    removed.dataset.remove.split(" ").forEach(function (id) {
      var element = id && document.getElementById(id);
      if (element && element !== removed) element.remove();
    });
    removed.dataset.remove = "";
    document.body.dispatchEvent(new CustomEvent("studio:live-removed"));
  });
})();
